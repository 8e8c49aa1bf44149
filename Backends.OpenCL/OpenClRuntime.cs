using System.Text;
using Silk.NET.OpenCL;
using ClDeviceInfo = Silk.NET.OpenCL.DeviceInfo;

namespace Hal.Backends.OpenCL;

/// <summary>What one OpenCL device reports about itself, read once at discovery.</summary>
internal sealed record OpenClDeviceInfo(
    nint Platform,
    nint Device,
    string PlatformName,
    string Name,
    string Version,
    long GlobalMemoryBytes,
    long MaxAllocationBytes,
    long LocalMemoryBytes,
    int MaxWorkGroupSize,
    int ComputeUnits,
    bool HasFp64,
    bool HasFp16,
    string Extensions,
    bool IsCpu);

/// <summary>
/// The process-wide OpenCL entry: loads the ICD loader once and enumerates every device of every platform
/// in platform order (opencl:0, opencl:1, …). Each failure keeps its own reason for the probe.
/// </summary>
internal static unsafe class OpenClRuntime
{
    private static readonly Lazy<(CL? Api, string? Reason)> Loaded = new(() => Load(null));
    private static readonly Lazy<(IReadOnlyList<OpenClDeviceInfo> Devices, string? Reason)> Discovered = new(Discover);

    /// <summary>The API, or null when the ICD loader cannot be loaded.</summary>
    internal static CL? Api => Loaded.Value.Api;

    /// <summary>Every device, or an empty list and the reason.</summary>
    internal static (IReadOnlyList<OpenClDeviceInfo> Devices, string? Reason) Devices => Discovered.Value;

    /// <summary>The API or a <see cref="BackendUnavailableException"/> with the reason.</summary>
    internal static CL RequireApi() => Api ?? throw new BackendUnavailableException("opencl", Loaded.Value.Reason ?? "the OpenCL ICD loader is missing");

    /// <summary>Loads the ICD loader (the default names, or <paramref name="libraryNames"/>); on failure, the probe's reason.</summary>
    internal static (CL? Api, string? Reason) Load(string[]? libraryNames)
    {
        try
        {
            var api = libraryNames is null ? CL.GetApi() : new CL(CL.CreateDefaultContext(libraryNames));
            uint count;
            // Touch one entry point so that a loader that resolves lazily fails here, inside the try.
            api.GetPlatformIDs(0, null, &count);
            return (api, null);
        }
        catch (Exception e)
        {
            return (null, "no OpenCL ICD loader (libOpenCL.so.1) could be loaded; install ocl-icd-libopencl1 and a driver such as pocl-opencl-icd (" + e.GetType().Name + ": " + e.Message + ")");
        }
    }

    private static (IReadOnlyList<OpenClDeviceInfo>, string?) Discover()
    {
        var api = Api;
        if (api is null)
        {
            return ([], Loaded.Value.Reason);
        }
        try
        {
            uint platformCount;
            int status = api.GetPlatformIDs(0, null, &platformCount);
            // -1001 (CL_PLATFORM_NOT_FOUND_KHR) is how ocl-icd says that no vendor ICD is registered.
            if (status == -1001 || (status == 0 && platformCount == 0))
            {
                return ([], "the OpenCL ICD loader found no platform (no driver is registered in /etc/OpenCL/vendors; install pocl-opencl-icd or a GPU driver)");
            }
            OpenClException.Check(status, "counting OpenCL platforms");
            var platforms = new nint[platformCount];
            fixed (nint* p = platforms)
            {
                OpenClException.Check(api.GetPlatformIDs(platformCount, p, null), "listing OpenCL platforms");
            }
            var devices = new List<OpenClDeviceInfo>();
            foreach (var platform in platforms)
            {
                uint deviceCount;
                status = api.GetDeviceIDs(platform, DeviceType.All, 0, null, &deviceCount);
                if (status == -1 || deviceCount == 0)
                {
                    continue;
                }
                OpenClException.Check(status, "counting the devices of an OpenCL platform");
                var ids = new nint[deviceCount];
                fixed (nint* d = ids)
                {
                    OpenClException.Check(api.GetDeviceIDs(platform, DeviceType.All, deviceCount, d, null), "listing the devices of an OpenCL platform");
                }
                string platformName = PlatformString(api, platform, PlatformInfo.Name);
                foreach (var id in ids)
                {
                    devices.Add(Describe(api, platform, platformName, id));
                }
            }
            if (devices.Count == 0)
            {
                return ([], $"{platforms.Length} OpenCL platform(s) found but none has a device (a driver is registered, yet it reports no CPU, GPU or accelerator device)");
            }
            return (devices, null);
        }
        catch (Exception e)
        {
            return ([], "OpenCL device discovery failed: " + e.Message);
        }
    }

    private static OpenClDeviceInfo Describe(CL api, nint platform, string platformName, nint device)
    {
        string ext = DeviceString(api, device, ClDeviceInfo.Extensions);
        return new OpenClDeviceInfo(
            platform,
            device,
            platformName,
            DeviceString(api, device, ClDeviceInfo.Name).Trim(),
            DeviceString(api, device, ClDeviceInfo.Version).Trim(),
            (long)DeviceValue<ulong>(api, device, ClDeviceInfo.GlobalMemSize),
            (long)DeviceValue<ulong>(api, device, ClDeviceInfo.MaxMemAllocSize),
            (long)DeviceValue<ulong>(api, device, ClDeviceInfo.LocalMemSize),
            (int)DeviceValue<nuint>(api, device, ClDeviceInfo.MaxWorkGroupSize),
            (int)DeviceValue<uint>(api, device, ClDeviceInfo.MaxComputeUnits),
            ext.Contains("cl_khr_fp64", StringComparison.Ordinal),
            ext.Contains("cl_khr_fp16", StringComparison.Ordinal),
            ext,
            // CL_DEVICE_TYPE_CPU = 2.
            (DeviceValue<ulong>(api, device, ClDeviceInfo.Type) & 2) != 0);
    }

    internal static T DeviceValue<T>(CL api, nint device, ClDeviceInfo what)
        where T : unmanaged
    {
        T value = default;
        OpenClException.Check(api.GetDeviceInfo(device, what, (nuint)sizeof(T), &value, null), $"reading device info {what}");
        return value;
    }

    internal static string DeviceString(CL api, nint device, ClDeviceInfo what)
    {
        nuint size;
        OpenClException.Check(api.GetDeviceInfo(device, what, 0, null, &size), $"reading the size of device info {what}");
        var bytes = new byte[(int)size];
        fixed (byte* b = bytes)
        {
            OpenClException.Check(api.GetDeviceInfo(device, what, size, b, null), $"reading device info {what}");
        }
        return Encoding.UTF8.GetString(bytes).TrimEnd('\0');
    }

    private static string PlatformString(CL api, nint platform, PlatformInfo what)
    {
        nuint size;
        OpenClException.Check(api.GetPlatformInfo(platform, what, 0, null, &size), $"reading the size of platform info {what}");
        var bytes = new byte[(int)size];
        fixed (byte* b = bytes)
        {
            OpenClException.Check(api.GetPlatformInfo(platform, what, size, b, null), $"reading platform info {what}");
        }
        return Encoding.UTF8.GetString(bytes).TrimEnd('\0').Trim();
    }
}
