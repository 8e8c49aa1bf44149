namespace Hal.Backends.Npu;

/// <summary>ONNX Runtime refused or failed a kernel's graph; names the kernel and the execution provider.</summary>
public sealed class OnnxRuntimeKernelException(string kernel, string provider, string detail, Exception? inner = null)
    : HalException($"npu kernel '{kernel}' failed on the ONNX Runtime {provider} provider: {detail}", inner)
{
    /// <summary>The kernel (graph) that failed, e.g. <c>binary.Add.f32.r2.r2</c>.</summary>
    public string Kernel { get; } = kernel;

    /// <summary>The execution provider's short name.</summary>
    public string Provider { get; } = provider;
}
