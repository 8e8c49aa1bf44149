namespace Hal.Backends.Cpu.Tests;

public sealed class OpsValidationTests(CpuFixture fx) : IClassFixture<CpuFixture>
{
    private Ops Ops => fx.Ops;

    [Fact]
    public void ShapeMismatchesRaiseWithBothShapes()
    {
        using var a = Ops.Zeros(new Shape(2, 3));
        using var b = Ops.Zeros(new Shape(4));
        using var y = Ops.Zeros(new Shape(2, 3));
        var e = Assert.Throws<ShapeMismatchException>(() => Ops.Binary(BinaryOp.Add, a, b, y));
        Assert.Equal(new Shape(2, 3), e.Expected);
        Assert.Equal(new Shape(4), e.Actual);
        using var y2 = Ops.Zeros(new Shape(3, 2));
        Assert.Throws<ShapeMismatchException>(() => Ops.Binary(BinaryOp.Add, a, a, y2));
        Assert.Throws<ShapeMismatchException>(() => Ops.Unary(UnaryOp.Exp, a, y2));
        Assert.Throws<ShapeMismatchException>(() => Ops.Copy(a, b));
        Assert.Throws<ShapeMismatchException>(() => Ops.Cast(a, b));
        Assert.Throws<ShapeMismatchException>(() => Ops.Reduce(ReduceOp.Sum, a, 1, y));
        Assert.Throws<ShapeMismatchException>(() => Ops.Reduce(ReduceOp.Sum, a, 2, y));
        using var idx = Ops.Zeros(new Shape(2), DType.I64);
        Assert.Throws<ShapeMismatchException>(() => Ops.ArgMax(a, 1, idx));
        using var empty = Ops.Zeros(new Shape(2, 0));
        using var idx2 = Ops.Zeros(new Shape(2, 1), DType.I64);
        Assert.Throws<ShapeMismatchException>(() => Ops.ArgMax(empty, 1, idx2));
        using var i2d = Ops.Zeros(new Shape(2, 1), DType.I64);
        Assert.Throws<ShapeMismatchException>(() => Ops.IndexSelect(a, 0, i2d, y));
        Assert.Throws<ShapeMismatchException>(() => Ops.IndexSelect(a, 0, idx, b));
        Assert.Throws<ShapeMismatchException>(() => Ops.Gather(a, 0, idx, y));
        Assert.Throws<ShapeMismatchException>(() => Ops.ScatterAdd(y, 0, i2d, a));
        Assert.Throws<ShapeMismatchException>(() => Ops.FromArray(new double[5], new Shape(2, 3)));
    }

    [Fact]
    public void DTypeMismatchesRaise()
    {
        using var a = Ops.Zeros(new Shape(4));
        using var d = Ops.Zeros(new Shape(4), DType.F64);
        Assert.Throws<DTypeMismatchException>(() => Ops.Binary(BinaryOp.Add, a, d, a));
        Assert.Throws<DTypeMismatchException>(() => Ops.Binary(BinaryOp.Add, a, a, d));
        Assert.Throws<DTypeMismatchException>(() => Ops.Unary(UnaryOp.Neg, a, d));
        Assert.Throws<DTypeMismatchException>(() => Ops.Copy(a, d));
        using var r = Ops.Zeros(new Shape(1), DType.F64);
        Assert.Throws<DTypeMismatchException>(() => Ops.Reduce(ReduceOp.Sum, a, 0, r));
    }

    [Fact]
    public void UnsupportedDTypesRaiseWithOpAndDType()
    {
        using var i = Ops.Zeros(new Shape(4), DType.I32);
        var e = Assert.Throws<DTypeNotSupportedException>(() => Ops.Unary(UnaryOp.Exp, i, i));
        Assert.Equal(DType.I32, e.DType);
        Assert.Equal("cpu", e.Backend);
        using var u = Ops.Zeros(new Shape(4), DType.U8);
        Assert.Throws<DTypeNotSupportedException>(() => Ops.Unary(UnaryOp.Neg, u, u));
        Assert.Throws<DTypeNotSupportedException>(() => Ops.Binary(BinaryOp.Pow, i, i, i));
        using var b = Ops.Zeros(new Shape(4), DType.Bool);
        Assert.Throws<DTypeNotSupportedException>(() => Ops.Binary(BinaryOp.Add, b, b, b));
        using var r = Ops.Zeros(new Shape(1), DType.I32);
        Assert.Throws<DTypeNotSupportedException>(() => Ops.Reduce(ReduceOp.Mean, i, 0, r));
        Assert.Throws<DTypeNotSupportedException>(() => Ops.RandomUniform(i, 1));
        using var f = Ops.Zeros(new Shape(4));
        using var fi = Ops.Zeros(new Shape(1));
        Assert.Throws<DTypeNotSupportedException>(() => Ops.ArgMax(f, 0, fi));
        Assert.Throws<DTypeNotSupportedException>(() => Ops.IndexSelect(f, 0, f, f));
    }

    [Fact]
    public void OperandsOnAnotherDeviceRaise()
    {
        using var other = new CpuBackend().Open(0);
        var otherOps = new Ops(other);
        using var a = Ops.Zeros(new Shape(3));
        using var b = otherOps.Zeros(new Shape(3));
        var e = Assert.Throws<DeviceMismatchException>(() => Ops.Binary(BinaryOp.Add, a, b, a));
        Assert.Equal("cpu:0", e.Actual.ToString());
        Assert.Throws<DeviceMismatchException>(() => Ops.Copy(b, a));
        Assert.Throws<DeviceMismatchException>(() => otherOps.Fill(a, 1));
    }

    [Fact]
    public void UseAfterDisposeRaises()
    {
        var t = Ops.Zeros(new Shape(3));
        t.Dispose();
        Assert.Throws<ObjectDisposedException>(() => Ops.Fill(t, 1));
        Assert.Throws<ObjectDisposedException>(() => Ops.ToDoubleArray(t));

        var device = new CpuBackend().Open(0);
        var ops = new Ops(device);
        var u = ops.Zeros(new Shape(3));
        device.Dispose();
        Assert.Throws<ObjectDisposedException>(() => ops.Fill(u, 1));
        Assert.Throws<ObjectDisposedException>(() => ops.Zeros(new Shape(3)));
        Assert.Throws<ObjectDisposedException>(() => device.Synchronize());
    }

    [Fact]
    public void NegativeAxesCountFromTheEnd()
    {
        using var x = Ops.FromArray(new double[] { 1, 2, 3, 4, 5, 6 }, new Shape(2, 3));
        using var y = Ops.Empty(new Shape(2, 1));
        Ops.Reduce(ReduceOp.Sum, x, -1, y);
        Assert.Equal(new double[] { 6, 15 }, Ops.ToDoubleArray(y));
    }
}
