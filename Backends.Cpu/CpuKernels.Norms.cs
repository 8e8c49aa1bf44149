using System.Numerics;
using System.Runtime.Intrinsics;

namespace Hal.Backends.Cpu;

// Layer norm and RMS norm over the last axis, forward and backward.
// Legend: N rows (all axes but the last), C the normalised axis; weight, bias [C]; mean, rstd [N] F32.
// Variance is the biased one (divide by C), computed two-pass around the mean so it never cancels.
internal sealed partial class CpuKernels
{
    public void LayerNorm(Tensor x, Tensor weight, Tensor? bias, double eps, Tensor y, Tensor mean, Tensor rstd)
    {
        if (x.DType.Is16Bit())
        {
            ViaF32Rows([weight, bias], [x, y, mean, rstd], [false, true, true, true], RowsCols(x).Rows, (w, r) => LayerNorm(r[0], w[0]!, w[1], eps, r[1], r[2], r[3]));
        }
        else if (x.DType == DType.F64)
        {
            NormRows<double>(x, weight, bias, eps, y, mean, rstd, centred: true);
        }
        else
        {
            NormRows<float>(x, weight, bias, eps, y, mean, rstd, centred: true);
        }
    }

    public void RmsNorm(Tensor x, Tensor weight, double eps, Tensor y, Tensor rstd)
    {
        if (x.DType.Is16Bit())
        {
            ViaF32Rows([weight], [x, y, rstd], [false, true, true], RowsCols(x).Rows, (w, r) => RmsNorm(r[0], w[0]!, eps, r[1], r[2]));
        }
        else if (x.DType == DType.F64)
        {
            NormRows<double>(x, weight, null, eps, y, null, rstd, centred: false);
        }
        else
        {
            NormRows<float>(x, weight, null, eps, y, null, rstd, centred: false);
        }
    }

    public void LayerNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dweight, Tensor? dbias)
    {
        if (x.DType.Is16Bit())
        {
            ViaF32([dy, x, weight], [dx, dweight, dbias], (i, o) => LayerNormBackward(i[0]!, i[1]!, i[2]!, mean, rstd, o[0]!, o[1]!, o[2]));
        }
        else if (x.DType == DType.F64)
        {
            NormBackwardRows<double>(dy, x, weight, mean, rstd, dx, dweight, dbias);
        }
        else
        {
            NormBackwardRows<float>(dy, x, weight, mean, rstd, dx, dweight, dbias);
        }
    }

    public void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor dweight)
    {
        if (x.DType.Is16Bit())
        {
            ViaF32([dy, x, weight], [dx, dweight], (i, o) => RmsNormBackward(i[0]!, i[1]!, i[2]!, rstd, o[0]!, o[1]!));
        }
        else if (x.DType == DType.F64)
        {
            NormBackwardRows<double>(dy, x, weight, null, rstd, dx, dweight, null);
        }
        else
        {
            NormBackwardRows<float>(dy, x, weight, null, rstd, dx, dweight, null);
        }
    }

    /// <summary>Layer norm (centred) or RMS norm (mean taken as 0) of every row.</summary>
    private unsafe void NormRows<T>(Tensor x, Tensor weight, Tensor? bias, double eps, Tensor y, Tensor? mean, Tensor rstd, bool centred)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (rows, c) = RowsCols(x);
        nint px = (nint)Ptr(x), pw = (nint)Ptr(weight), pb = bias is null ? 0 : (nint)Ptr(bias), py = (nint)Ptr(y);
        nint pm = mean is null ? 0 : (nint)Ptr(mean), pr = (nint)Ptr(rstd);
        T epsT = T.CreateTruncating(eps);
        T count = T.CreateTruncating(c);
        ParallelFor(rows, c, (start, end) =>
        {
            for (long r = start; r < end; r++)
            {
                T* xr = (T*)px + (r * c);
                T mu = centred ? CpuRowMath.Sum(xr, c) / count : T.Zero;
                T variance = CpuRowMath.CentredSumSquares(xr, mu, c) / count;
                T inv = T.One / T.Sqrt(variance + epsT);
                CpuRowMath.NormAffine(xr, mu, inv, (T*)pw, (T*)pb, (T*)py + (r * c), c);
                if (pm != 0)
                {
                    ((float*)pm)[r] = float.CreateTruncating(mu);
                }
                ((float*)pr)[r] = float.CreateTruncating(inv);
            }
        });
    }

    /// <summary>
    /// Backward of layer norm (mean given) or RMS norm (mean null). With x̂ = (x − μ)·rstd and g = dy ⊙ w:
    /// dx = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂)) (layer norm) or rstd·(g − x̂·mean(g ⊙ x̂)) (RMS norm);
    /// dweight = Σ_rows dy ⊙ x̂, dbias = Σ_rows dy, reduced per chunk and combined in chunk order.
    /// </summary>
    private unsafe void NormBackwardRows<T>(Tensor dy, Tensor x, Tensor weight, Tensor? mean, Tensor rstd, Tensor dx, Tensor dweight, Tensor? dbias)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (rows, c) = RowsCols(x);
        nint pdy = (nint)Ptr(dy), px = (nint)Ptr(x), pw = (nint)Ptr(weight), pdx = (nint)Ptr(dx);
        nint pm = mean is null ? 0 : (nint)Ptr(mean), pr = (nint)Ptr(rstd);
        bool centred = mean is not null;
        int chunks = ChunkCount(rows, c);
        var dwParts = new T[Math.Max(1, chunks)][];
        var dbParts = new T[Math.Max(1, chunks)][];
        T count = T.CreateTruncating(c);
        ParallelForChunks(rows, c, (chunk, start, end) =>
        {
            var dwPart = new T[c];
            var dbPart = new T[c];
            T* w = (T*)pw;
            for (long r = start; r < end; r++)
            {
                T* xr = (T*)px + (r * c);
                T* dyr = (T*)pdy + (r * c);
                T* dxr = (T*)pdx + (r * c);
                T mu = centred ? T.CreateTruncating(((float*)pm)[r]) : T.Zero;
                T inv = T.CreateTruncating(((float*)pr)[r]);
                fixed (T* dwp = dwPart, dbp = dbPart)
                {
                    var (sumG, sumGx) = NormBackwardSums(xr, dyr, w, mu, inv, dwp, dbp, c);
                    T meanG = centred ? sumG / count : T.Zero;
                    NormBackwardDx(xr, dyr, w, mu, inv, meanG, sumGx / count, dxr, c);
                }
            }
            dwParts[chunk] = dwPart;
            dbParts[chunk] = dbPart;
        });
        T* dw = (T*)Ptr(dweight);
        T* db = dbias is null ? null : (T*)Ptr(dbias);
        for (int i = 0; i < c; i++)
        {
            T sw = T.Zero, sb = T.Zero;
            for (int k = 0; k < chunks; k++)
            {
                sw += dwParts[k][i];
                sb += dbParts[k][i];
            }
            dw[i] = sw;
            if (db != null)
            {
                db[i] = sb;
            }
        }
    }

    /// <summary>
    /// One row's Σ g and Σ g·x̂ (g = dy ⊙ w, x̂ = (x − μ)·rstd), and its contribution to the chunk's dweight (dy·x̂) and
    /// dbias (dy) partials.
    /// </summary>
    private static unsafe (T SumG, T SumGx) NormBackwardSums<T>(T* x, T* dy, T* w, T mu, T inv, T* dw, T* db, int c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        T sumG = T.Zero, sumGx = T.Zero;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported)
        {
            var vm = Vector256.Create(mu);
            var vi = Vector256.Create(inv);
            var accG = Vector256<T>.Zero;
            var accGx = Vector256<T>.Zero;
            for (; i <= c - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                var xhat = (Vector256.Load(x + i) - vm) * vi;
                var d = Vector256.Load(dy + i);
                var g = d * Vector256.Load(w + i);
                accG += g;
                accGx = CpuRowMath.Fma(g, xhat, accGx);
                CpuRowMath.Fma(d, xhat, Vector256.Load(dw + i)).Store(dw + i);
                (Vector256.Load(db + i) + d).Store(db + i);
            }
            sumG = Vector256.Sum(accG);
            sumGx = Vector256.Sum(accGx);
        }
        for (; i < c; i++)
        {
            T xhat = (x[i] - mu) * inv;
            T g = dy[i] * w[i];
            sumG += g;
            sumGx = T.FusedMultiplyAdd(g, xhat, sumGx);
            dw[i] = T.FusedMultiplyAdd(dy[i], xhat, dw[i]);
            db[i] += dy[i];
        }
        return (sumG, sumGx);
    }

    /// <summary>dx = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂)) for one row.</summary>
    private static unsafe void NormBackwardDx<T>(T* x, T* dy, T* w, T mu, T inv, T meanG, T meanGx, T* dx, int c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported)
        {
            var vm = Vector256.Create(mu);
            var vi = Vector256.Create(inv);
            var vg = Vector256.Create(meanG);
            var vgx = Vector256.Create(-meanGx);
            for (; i <= c - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                var xhat = (Vector256.Load(x + i) - vm) * vi;
                var g = (Vector256.Load(dy + i) * Vector256.Load(w + i)) - vg;
                (vi * CpuRowMath.Fma(xhat, vgx, g)).Store(dx + i);
            }
        }
        for (; i < c; i++)
        {
            T xhat = (x[i] - mu) * inv;
            dx[i] = inv * T.FusedMultiplyAdd(-xhat, meanGx, (dy[i] * w[i]) - meanG);
        }
    }
}
