using System.Runtime.InteropServices;

namespace Hal.Backends.Cuda.Native;

/// <summary>
/// Finds the CUDA driver, cuBLAS and NCCL shared libraries: the directories in <c>HAL_CUDA_LIBRARY_PATH</c> first,
/// then the loader path, the CUDA toolkit folders and the pip layout (<c>site-packages/nvidia/&lt;lib&gt;/lib</c>).
/// Also teaches ILGPU, which asks for the unversioned <c>libcuda.so</c>, to take <c>libcuda.so.1</c>.
/// </summary>
internal static class CudaLibraries
{
    /// <summary>Environment variable naming extra library folders (colon-separated).</summary>
    public const string PathVariable = "HAL_CUDA_LIBRARY_PATH";

    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, IntPtr> Loaded = [];
    private static bool _resolverSet;

    /// <summary>Driver library names, most specific first.</summary>
    public static readonly string[] DriverNames = ["libcuda.so.1", "libcuda.so"];

    /// <summary>cuBLAS names: CUDA 13, then 12, then unversioned.</summary>
    public static readonly string[] CublasNames = ["libcublas.so.13", "libcublas.so.12", "libcublas.so"];

    /// <summary>NCCL names.</summary>
    public static readonly string[] NcclNames = ["libnccl.so.2", "libnccl.so"];

    /// <summary>Registers the resolver that maps ILGPU's driver import onto <c>libcuda.so.1</c> (once per process).</summary>
    public static void InstallIlgpuResolver()
    {
        lock (Gate)
        {
            if (_resolverSet)
            {
                return;
            }
            _resolverSet = true;
            try
            {
                NativeLibrary.SetDllImportResolver(typeof(ILGPU.Context).Assembly, (name, _, _) =>
                    name.Contains("cuda", StringComparison.OrdinalIgnoreCase) && !name.Contains("nvrtc", StringComparison.OrdinalIgnoreCase)
                        ? TryLoad("driver", DriverNames, out IntPtr h, out _) ? h : IntPtr.Zero
                        : IntPtr.Zero);
            }
            catch (InvalidOperationException)
            {
                // Another component of this process already set a resolver for ILGPU; keep it.
            }
        }
    }

    /// <summary>Loads the first library of <paramref name="names"/> found; <paramref name="tried"/> lists where it looked.</summary>
    public static bool TryLoad(string key, string[] names, out IntPtr handle, out string tried)
    {
        lock (Gate)
        {
            if (Loaded.TryGetValue(key, out handle))
            {
                tried = "";
                return true;
            }
            var places = new List<string>();
            foreach (string dir in SearchFolders(key))
            {
                foreach (string name in names)
                {
                    string path = Path.Combine(dir, name);
                    if (File.Exists(path))
                    {
                        PreloadSiblings(dir, key);
                        if (NativeLibrary.TryLoad(path, out handle))
                        {
                            Loaded[key] = handle;
                            tried = path;
                            return true;
                        }
                        places.Add(path + " (present, failed to load)");
                    }
                }
            }
            foreach (string name in names)
            {
                if (NativeLibrary.TryLoad(name, out handle))
                {
                    Loaded[key] = handle;
                    tried = name;
                    return true;
                }
            }
            places.Add("loader path");
            tried = string.Join(", ", places);
            handle = IntPtr.Zero;
            return false;
        }
    }

    /// <summary>cuBLAS needs cuBLASLt from its own folder; load it first so the loader finds it without RPATH help.</summary>
    private static void PreloadSiblings(string dir, string key)
    {
        if (key != "cublas")
        {
            return;
        }
        foreach (string lt in new[] { "libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so" })
        {
            string path = Path.Combine(dir, lt);
            if (File.Exists(path) && NativeLibrary.TryLoad(path, out _))
            {
                return;
            }
        }
    }

    /// <summary>Folders to look in for one library kind (<c>driver</c>, <c>cublas</c>, <c>nccl</c>), in order.</summary>
    public static IEnumerable<string> SearchFolders(string key)
    {
        string? extra = Environment.GetEnvironmentVariable(PathVariable);
        if (!string.IsNullOrWhiteSpace(extra))
        {
            foreach (string d in extra.Split(':', StringSplitOptions.RemoveEmptyEntries))
            {
                yield return d;
            }
        }
        string? ld = Environment.GetEnvironmentVariable("LD_LIBRARY_PATH");
        if (!string.IsNullOrWhiteSpace(ld))
        {
            foreach (string d in ld.Split(':', StringSplitOptions.RemoveEmptyEntries))
            {
                yield return d;
            }
        }
        foreach (string? root in new[] { Environment.GetEnvironmentVariable("CUDA_PATH"), Environment.GetEnvironmentVariable("CUDA_HOME"), "/usr/local/cuda" })
        {
            if (!string.IsNullOrEmpty(root))
            {
                yield return Path.Combine(root, "lib64");
                yield return Path.Combine(root, "targets", "x86_64-linux", "lib");
            }
        }
        yield return "/usr/lib/x86_64-linux-gnu";
        yield return "/usr/lib64";
        yield return "/usr/lib/wsl/lib";
        if (key == "driver")
        {
            yield break;
        }
        foreach (string sitePackages in PythonSitePackages())
        {
            yield return Path.Combine(sitePackages, "nvidia", key, "lib");
            yield return Path.Combine(sitePackages, "nvidia", "cu13", "lib");
        }
    }

    /// <summary>
    /// The CUDA toolkit's NVVM library and LibDevice bitcode (accurate math functions for kernels), from
    /// <c>$CUDA_PATH</c>, <c>$CUDA_HOME</c>, <c>/usr/local/cuda</c> or the pip wheel <c>nvidia/cuda_nvcc</c>; null when absent.
    /// </summary>
    public static (string NvvmPath, string LibDevicePath)? FindLibDevice()
    {
        var roots = new List<string>();
        foreach (string? root in new[] { Environment.GetEnvironmentVariable("CUDA_PATH"), Environment.GetEnvironmentVariable("CUDA_HOME"), "/usr/local/cuda" })
        {
            if (!string.IsNullOrEmpty(root))
            {
                roots.Add(root);
            }
        }
        foreach (string sitePackages in PythonSitePackages())
        {
            roots.Add(Path.Combine(sitePackages, "nvidia", "cuda_nvcc"));
            roots.Add(Path.Combine(sitePackages, "nvidia", "cu13"));
        }
        foreach (string root in roots)
        {
            string nvvm = Path.Combine(root, "nvvm");
            string bitcode = Path.Combine(nvvm, "libdevice", "libdevice.10.bc");
            if (!File.Exists(bitcode))
            {
                continue;
            }
            foreach (string lib in new[] { "lib64", "lib" })
            {
                string dir = Path.Combine(nvvm, lib);
                string? so = SafeFiles(dir).Where(f => Path.GetFileName(f).StartsWith("libnvvm.so", StringComparison.Ordinal)).OrderBy(f => f.Length).FirstOrDefault();
                if (so is not null)
                {
                    return (so, bitcode);
                }
            }
        }
        return null;
    }

    private static string[] SafeFiles(string dir)
    {
        try
        {
            return Directory.Exists(dir) ? Directory.GetFiles(dir) : [];
        }
        catch (IOException)
        {
            return [];
        }
        catch (UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>site-packages / dist-packages folders of virtual environments and system Pythons that may hold NVIDIA wheels.</summary>
    private static IEnumerable<string> PythonSitePackages()
    {
        var roots = new List<string>();
        string? venv = Environment.GetEnvironmentVariable("VIRTUAL_ENV");
        if (!string.IsNullOrEmpty(venv))
        {
            roots.Add(venv);
        }
        foreach (string opt in SafeDirectories("/opt"))
        {
            roots.Add(Path.Combine(opt, ".venv"));
            roots.Add(opt);
        }
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (!string.IsNullOrEmpty(home))
        {
            roots.Add(Path.Combine(home, ".local"));
        }
        roots.Add("/usr/local");
        roots.Add("/usr");
        foreach (string root in roots)
        {
            foreach (string py in SafeDirectories(Path.Combine(root, "lib")).Where(d => Path.GetFileName(d).StartsWith("python3", StringComparison.Ordinal)))
            {
                yield return Path.Combine(py, "site-packages");
                yield return Path.Combine(py, "dist-packages");
            }
        }
    }

    private static string[] SafeDirectories(string dir)
    {
        try
        {
            return Directory.Exists(dir) ? Directory.GetDirectories(dir) : [];
        }
        catch (IOException)
        {
            return [];
        }
        catch (UnauthorizedAccessException)
        {
            return [];
        }
    }
}
