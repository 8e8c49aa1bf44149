using System.Reflection;
using System.Text;
using Silk.NET.OpenCL;

namespace Hal.Backends.OpenCL;

/// <summary>
/// Programs built from the embedded OpenCL C sources, cached per (source file, build options) on one device, and
/// their kernel objects cached by name. One source file holds many kernels; dtypes are chosen by -D options, so
/// the number of distinct programs stays small (PoCL also caches the built binaries on disk).
/// </summary>
internal sealed unsafe class OpenClProgramCache(OpenClDevice device) : IDisposable
{
    private static readonly Dictionary<string, string> Sources = [];
    private readonly Lock _lock = new();
    private readonly Dictionary<(string File, string Options), nint> _programs = [];
    private readonly Dictionary<(nint Program, string Name), nint> _kernels = [];

    /// <summary>The kernel <paramref name="name"/> of <paramref name="file"/> built with <paramref name="options"/>.</summary>
    internal nint Kernel(string file, string options, string name)
    {
        lock (_lock)
        {
            if (!_programs.TryGetValue((file, options), out nint program))
            {
                program = Build(file, options);
                _programs[(file, options)] = program;
            }
            if (!_kernels.TryGetValue((program, name), out nint kernel))
            {
                int status;
                kernel = device.Api.CreateKernel(program, name, &status);
                OpenClException.Check(status, $"creating kernel '{name}' of {file} [{options}] on {device.Id}");
                _kernels[(program, name)] = kernel;
            }
            return kernel;
        }
    }

    /// <summary>Number of programs built so far.</summary>
    internal int ProgramCount
    {
        get
        {
            lock (_lock)
            {
                return _programs.Count;
            }
        }
    }

    internal static string Source(string file)
    {
        lock (Sources)
        {
            if (!Sources.TryGetValue(file, out var text))
            {
                var asm = Assembly.GetExecutingAssembly();
                string common = Read(asm, "common.cl");
                text = common + "\n#line 1\n" + Read(asm, file);
                Sources[file] = text;
            }
            return text;
        }
    }

    private static string Read(Assembly asm, string file)
    {
        using var stream = asm.GetManifestResourceStream("Hal.Backends.OpenCL.Kernels." + file)
            ?? throw new InvalidOperationException($"the OpenCL source {file} is not embedded in {asm.GetName().Name}");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    private nint Build(string file, string options)
    {
        var api = device.Api;
        int status;
        nint program = api.CreateProgramWithSource(device.Context, 1, [Source(file)], null, &status);
        OpenClException.Check(status, $"creating program {file} on {device.Id}");
        nint dev = device.Info.Device;
        status = api.BuildProgram(program, 1, &dev, options, null, null);
        if (status != 0)
        {
            string log = BuildLog(program);
            api.ReleaseProgram(program);
            throw new OpenClException(status, $"building {file} with options [{options}] on {device.Id}", "build log:\n" + log);
        }
        return program;
    }

    private string BuildLog(nint program)
    {
        var api = device.Api;
        nuint size;
        if (api.GetProgramBuildInfo(program, device.Info.Device, ProgramBuildInfo.BuildLog, 0, null, &size) != 0)
        {
            return "(no build log)";
        }
        var bytes = new byte[(int)size];
        fixed (byte* b = bytes)
        {
            if (api.GetProgramBuildInfo(program, device.Info.Device, ProgramBuildInfo.BuildLog, size, b, null) != 0)
            {
                return "(no build log)";
            }
        }
        return Encoding.UTF8.GetString(bytes).TrimEnd('\0');
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var k in _kernels.Values)
            {
                device.Api.ReleaseKernel(k);
            }
            foreach (var p in _programs.Values)
            {
                device.Api.ReleaseProgram(p);
            }
            _kernels.Clear();
            _programs.Clear();
        }
    }
}
