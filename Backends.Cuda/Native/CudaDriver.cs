using System.Runtime.InteropServices;

namespace Hal.Backends.Cuda.Native;

/// <summary>The few CUDA driver entry points the probe needs, called through the loaded <c>libcuda.so.1</c>.</summary>
internal static unsafe class CudaDriver
{
    /// <summary>The oldest driver API version the backend accepts (CUDA 11.0 = 11000).</summary>
    public const int MinimumDriverVersion = 11000;

    /// <summary>What the driver says about this machine, or why it cannot be asked.</summary>
    public sealed record DriverState(bool Loaded, string? Problem, int DriverVersion, int DeviceCount);

    /// <summary>Loads the driver, initialises it and counts devices; never throws.</summary>
    public static DriverState Query()
    {
        if (!CudaLibraries.TryLoad("driver", CudaLibraries.DriverNames, out IntPtr lib, out string tried))
        {
            return new DriverState(false, $"no CUDA driver (libcuda.so.1 not found; set {CudaLibraries.PathVariable} to its folder if it is installed)", 0, 0);
        }
        try
        {
            var init = (delegate* unmanaged<uint, int>)NativeLibrary.GetExport(lib, "cuInit");
            var version = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(lib, "cuDriverGetVersion");
            var count = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(lib, "cuDeviceGetCount");
            int v = 0;
            int status = version(&v);
            if (status != 0)
            {
                return new DriverState(true, $"the CUDA driver does not report its version ({ErrorName(lib, status)})", 0, 0);
            }
            if (v < MinimumDriverVersion)
            {
                return new DriverState(true, $"CUDA driver too old: it supports CUDA {v / 1000}.{v % 1000 / 10}, {MinimumDriverVersion / 1000}.0 or newer is needed", v, 0);
            }
            status = init(0);
            if (status == 100)
            {
                return new DriverState(true, "no CUDA device (CUDA_ERROR_NO_DEVICE)", v, 0);
            }
            if (status != 0)
            {
                return new DriverState(true, $"the CUDA driver failed to start: {ErrorName(lib, status)}", v, 0);
            }
            int n = 0;
            status = count(&n);
            if (status != 0 || n == 0)
            {
                return new DriverState(true, status != 0 ? $"cannot count CUDA devices: {ErrorName(lib, status)}" : "no CUDA device", v, 0);
            }
            return new DriverState(true, null, v, n);
        }
        catch (EntryPointNotFoundException e)
        {
            return new DriverState(true, $"the CUDA driver library lacks an entry point: {e.Message}", 0, 0);
        }
    }

    /// <summary>The driver's name for a CUresult (<c>CUDA_ERROR_…</c>), or the number when the driver cannot say.</summary>
    public static string ErrorName(int status)
    {
        return CudaLibraries.TryLoad("driver", CudaLibraries.DriverNames, out IntPtr lib, out _) ? ErrorName(lib, status) : $"CUresult {status}";
    }

    private static string ErrorName(IntPtr lib, int status)
    {
        if (!NativeLibrary.TryGetExport(lib, "cuGetErrorName", out IntPtr fn))
        {
            return $"CUresult {status}";
        }
        byte* name = null;
        return ((delegate* unmanaged<int, byte**, int>)fn)(status, &name) == 0 && name != null
            ? Marshal.PtrToStringAnsi((IntPtr)name) ?? $"CUresult {status}"
            : $"CUresult {status}";
    }
}
