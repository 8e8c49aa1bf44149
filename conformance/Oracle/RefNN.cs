namespace Hal.Conformance.Oracle;

/// <summary>
/// fp64 definitions of the tier-2 (fused) ops, forward and backward, written as plain loops from their
/// mathematical definitions (IFusedKernels docs), independent of every backend. Arrays are row-major.
/// Legend: rows × cols for the row-wise ops (the op works along cols); attention q [B, H, Tq, D], k and v
/// [B, Hkv, Tk, D], output [B, H, Tq, D], lse [B, H, Tq]. Backward functions recompute what they need from the
/// forward inputs.
/// </summary>
public static class RefNN
{
    /// <summary>y = exp(x − max)/Σ exp(x − max) along each row.</summary>
    public static double[] Softmax(double[] x, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(x);
        var y = new double[(long)rows * cols];
        for (int r = 0; r < rows; r++)
        {
            int o = r * cols;
            double max = RowMax(x, o, cols);
            double sum = 0;
            for (int c = 0; c < cols; c++)
            {
                sum += Math.Exp(x[o + c] - max);
            }
            for (int c = 0; c < cols; c++)
            {
                y[o + c] = Math.Exp(x[o + c] - max) / sum;
            }
        }
        return y;
    }

    /// <summary>dx = y ⊙ (dy − Σ dy ⊙ y) along each row, from the forward output y.</summary>
    public static double[] SoftmaxBackward(double[] y, double[] dy, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(y);
        ArgumentNullException.ThrowIfNull(dy);
        var dx = new double[(long)rows * cols];
        for (int r = 0; r < rows; r++)
        {
            int o = r * cols;
            double dot = 0;
            for (int c = 0; c < cols; c++)
            {
                dot += dy[o + c] * y[o + c];
            }
            for (int c = 0; c < cols; c++)
            {
                dx[o + c] = y[o + c] * (dy[o + c] - dot);
            }
        }
        return dx;
    }

    /// <summary>y = x − max − log Σ exp(x − max) along each row.</summary>
    public static double[] LogSoftmax(double[] x, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(x);
        var y = new double[(long)rows * cols];
        for (int r = 0; r < rows; r++)
        {
            int o = r * cols;
            double lse = LogSumExp(x, o, cols);
            for (int c = 0; c < cols; c++)
            {
                y[o + c] = x[o + c] - lse;
            }
        }
        return y;
    }

    /// <summary>dx = dy − exp(y)·Σ dy along each row, from the forward output y.</summary>
    public static double[] LogSoftmaxBackward(double[] y, double[] dy, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(y);
        ArgumentNullException.ThrowIfNull(dy);
        var dx = new double[(long)rows * cols];
        for (int r = 0; r < rows; r++)
        {
            int o = r * cols;
            double sum = 0;
            for (int c = 0; c < cols; c++)
            {
                sum += dy[o + c];
            }
            for (int c = 0; c < cols; c++)
            {
                dx[o + c] = dy[o + c] - Math.Exp(y[o + c]) * sum;
            }
        }
        return dx;
    }

    /// <summary>
    /// Layer norm along each row: mean μ, biased variance σ², rstd = 1/√(σ² + eps), y = (x − μ)·rstd·w + b
    /// (b = 0 when <paramref name="bias"/> is null). Mean and Rstd have one element per row.
    /// </summary>
    public static (double[] Y, double[] Mean, double[] Rstd) LayerNorm(double[] x, double[] weight, double[]? bias, int rows, int cols, double eps)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        var y = new double[(long)rows * cols];
        var mean = new double[rows];
        var rstd = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            int o = r * cols;
            (mean[r], rstd[r]) = MeanRstd(x, o, cols, eps);
            for (int c = 0; c < cols; c++)
            {
                y[o + c] = (x[o + c] - mean[r]) * rstd[r] * weight[c] + (bias is null ? 0 : bias[c]);
            }
        }
        return (y, mean, rstd);
    }

    /// <summary>
    /// Gradients of <see cref="LayerNorm"/>: with x̂ = (x − μ)·rstd and g = w ⊙ dy,
    /// dx = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂)); dweight = Σ_rows dy ⊙ x̂; dbias = Σ_rows dy.
    /// </summary>
    public static (double[] Dx, double[] Dweight, double[] Dbias) LayerNormBackward(double[] dy, double[] x, double[] weight, int rows, int cols, double eps)
    {
        ArgumentNullException.ThrowIfNull(dy);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        var dx = new double[(long)rows * cols];
        var dw = new double[cols];
        var db = new double[cols];
        var xhat = new double[cols];
        for (int r = 0; r < rows; r++)
        {
            int o = r * cols;
            var (mu, rs) = MeanRstd(x, o, cols, eps);
            double meanG = 0, meanGx = 0;
            for (int c = 0; c < cols; c++)
            {
                xhat[c] = (x[o + c] - mu) * rs;
                double g = weight[c] * dy[o + c];
                meanG += g;
                meanGx += g * xhat[c];
                dw[c] += dy[o + c] * xhat[c];
                db[c] += dy[o + c];
            }
            meanG /= cols;
            meanGx /= cols;
            for (int c = 0; c < cols; c++)
            {
                dx[o + c] = rs * (weight[c] * dy[o + c] - meanG - xhat[c] * meanGx);
            }
        }
        return (dx, dw, db);
    }

    /// <summary>RMS norm along each row: rstd = 1/√(mean(x²) + eps), y = x·rstd·w.</summary>
    public static (double[] Y, double[] Rstd) RmsNorm(double[] x, double[] weight, int rows, int cols, double eps)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        var y = new double[(long)rows * cols];
        var rstd = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            int o = r * cols;
            rstd[r] = RmsRstd(x, o, cols, eps);
            for (int c = 0; c < cols; c++)
            {
                y[o + c] = x[o + c] * rstd[r] * weight[c];
            }
        }
        return (y, rstd);
    }

    /// <summary>
    /// Gradients of <see cref="RmsNorm"/>: with x̂ = x·rstd and g = w ⊙ dy, dx = rstd·(g − x̂·mean(g ⊙ x̂));
    /// dweight = Σ_rows dy ⊙ x̂.
    /// </summary>
    public static (double[] Dx, double[] Dweight) RmsNormBackward(double[] dy, double[] x, double[] weight, int rows, int cols, double eps)
    {
        ArgumentNullException.ThrowIfNull(dy);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        var dx = new double[(long)rows * cols];
        var dw = new double[cols];
        for (int r = 0; r < rows; r++)
        {
            int o = r * cols;
            double rs = RmsRstd(x, o, cols, eps);
            double meanGx = 0;
            for (int c = 0; c < cols; c++)
            {
                double xhat = x[o + c] * rs;
                meanGx += weight[c] * dy[o + c] * xhat;
                dw[c] += dy[o + c] * xhat;
            }
            meanGx /= cols;
            for (int c = 0; c < cols; c++)
            {
                dx[o + c] = rs * (weight[c] * dy[o + c] - x[o + c] * rs * meanGx);
            }
        }
        return (dx, dw);
    }

    /// <summary>
    /// Softmax cross-entropy per row: Lse = log Σ exp(logits), Losses = Lse − logits[target]; a negative target is
    /// ignored (loss 0; its Lse is still the row's log-sum-exp).
    /// </summary>
    public static (double[] Losses, double[] Lse) CrossEntropy(double[] logits, long[] targets, int rows, int vocab)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(targets);
        var losses = new double[rows];
        var lse = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            int o = r * vocab;
            lse[r] = LogSumExp(logits, o, vocab);
            losses[r] = targets[r] < 0 ? 0 : lse[r] - logits[o + targets[r]];
        }
        return (losses, lse);
    }

    /// <summary>dlogits = (softmax(logits) − onehot(target))·dlosses[row]; zero rows for ignored (negative) targets.</summary>
    public static double[] CrossEntropyBackward(double[] logits, long[] targets, double[] dlosses, int rows, int vocab)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(dlosses);
        var d = new double[(long)rows * vocab];
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] < 0)
            {
                continue;
            }
            int o = r * vocab;
            double lse = LogSumExp(logits, o, vocab);
            for (int c = 0; c < vocab; c++)
            {
                double p = Math.Exp(logits[o + c] - lse);
                d[o + c] = (p - (c == targets[r] ? 1 : 0)) * dlosses[r];
            }
        }
        return d;
    }

    /// <summary>
    /// Scaled-dot-product attention: s_ij = scale·q_i·k_j over the keys query i sees (all, or j ≤ i + Tk − Tq when
    /// causal); Lse_i = log Σ_j exp(s_ij); Output_i = Σ_j exp(s_ij − Lse_i)·v_j. Query head h reads key/value head
    /// h / (H/Hkv). A row that sees no key gets output 0 and lse −∞.
    /// </summary>
    public static (double[] Output, double[] Lse) Attention(double[] q, double[] k, double[] v, int batch, int heads, int kvHeads, int tq, int tk, int headDim, bool causal, double scale)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        var output = new double[(long)batch * heads * tq * headDim];
        var lse = new double[(long)batch * heads * tq];
        for (int b = 0; b < batch; b++)
        {
            for (int h = 0; h < heads; h++)
            {
                int kvh = h / (heads / kvHeads);
                for (int i = 0; i < tq; i++)
                {
                    var p = Probabilities(q, k, b, h, kvh, heads, kvHeads, tq, tk, headDim, i, causal, scale, out double rowLse);
                    long row = ((long)(b * heads + h) * tq) + i;
                    lse[row] = rowLse;
                    for (int j = 0; j < p.Length; j++)
                    {
                        long vo = (((long)(b * kvHeads + kvh) * tk) + j) * headDim;
                        for (int d = 0; d < headDim; d++)
                        {
                            output[row * headDim + d] += p[j] * v[vo + d];
                        }
                    }
                }
            }
        }
        return (output, lse);
    }

    /// <summary>
    /// Gradients of <see cref="Attention"/>: with P the attention probabilities and O the output,
    /// dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dO ⊙ O)), dQ = scale·dS·K, dK = scale·dSᵀ·Q; key/value
    /// gradients sum over the query heads that share a key/value head.
    /// </summary>
    public static (double[] Dq, double[] Dk, double[] Dv) AttentionBackward(double[] q, double[] k, double[] v, double[] dOutput, int batch, int heads, int kvHeads, int tq, int tk, int headDim, bool causal, double scale)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(dOutput);
        var (output, _) = Attention(q, k, v, batch, heads, kvHeads, tq, tk, headDim, causal, scale);
        var dq = new double[q.Length];
        var dk = new double[k.Length];
        var dv = new double[v.Length];
        for (int b = 0; b < batch; b++)
        {
            for (int h = 0; h < heads; h++)
            {
                int kvh = h / (heads / kvHeads);
                for (int i = 0; i < tq; i++)
                {
                    var p = Probabilities(q, k, b, h, kvh, heads, kvHeads, tq, tk, headDim, i, causal, scale, out _);
                    long row = (((long)(b * heads + h) * tq) + i) * headDim;
                    double delta = 0;
                    for (int d = 0; d < headDim; d++)
                    {
                        delta += dOutput[row + d] * output[row + d];
                    }
                    for (int j = 0; j < p.Length; j++)
                    {
                        long ko = (((long)(b * kvHeads + kvh) * tk) + j) * headDim;
                        double dp = 0;
                        for (int d = 0; d < headDim; d++)
                        {
                            dp += dOutput[row + d] * v[ko + d];
                            dv[ko + d] += p[j] * dOutput[row + d];
                        }
                        double ds = p[j] * (dp - delta);
                        for (int d = 0; d < headDim; d++)
                        {
                            dq[row + d] += scale * ds * k[ko + d];
                            dk[ko + d] += scale * ds * q[row + d];
                        }
                    }
                }
            }
        }
        return (dq, dk, dv);
    }

    /// <summary>f'(x) for Relu (1 for x &gt; 0, else 0), Tanh, Sigmoid, GeluErf, GeluTanh and Silu; NaN gives NaN for every op.</summary>
    public static double ActivationDerivative(UnaryOp op, double x)
    {
        switch (op)
        {
            case UnaryOp.Relu:
                return x > 0 ? 1 : double.IsNaN(x) ? x : 0;
            case UnaryOp.Tanh:
                {
                    double t = Math.Tanh(x);
                    return 1 - t * t;
                }
            case UnaryOp.Sigmoid:
                {
                    double s = Sigmoid(x);
                    return s * (1 - s);
                }
            case UnaryOp.Silu:
                {
                    // d/dx x·s(x) = s + x·s·(1 − s); the second term vanishes where s saturates (x = ±∞).
                    double s = Sigmoid(x);
                    return double.IsInfinity(x) ? s : s + x * s * (1 - s);
                }
            case UnaryOp.GeluErf:
                {
                    // d/dx x·Φ(x) = Φ(x) + x·φ(x), Φ(x) = ½·erfc(−x/√2), φ(x) = exp(−x²/2)/√(2π).
                    double cdf = 0.5 * RefSpecial.Erfc(-x / Math.Sqrt(2));
                    double pdf = Math.Exp(-0.5 * x * x) / Math.Sqrt(2 * Math.PI);
                    return double.IsInfinity(x) ? cdf : cdf + x * pdf;
                }
            case UnaryOp.GeluTanh:
                {
                    // d/dx ½x(1 + tanh u), u = k(x + c·x³): ½(1 + t) + ½x(1 − t²)·k(1 + 3c·x²).
                    double k = Math.Sqrt(2 / Math.PI);
                    const double c = 0.044715;
                    double t = Math.Tanh(k * (x + c * x * x * x));
                    // Once tanh saturates, sech² = 1 − t² is 0 and so is the second term (sech² decays faster than
                    // any power of x grows; written out so that 0·∞ cannot make a NaN for huge x).
                    double sech2 = 1 - t * t;
                    return sech2 == 0 ? 0.5 * (1 + t) : 0.5 * (1 + t) + 0.5 * x * sech2 * k * (1 + 3 * c * x * x);
                }
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "activation backward covers Relu, Tanh, Sigmoid, GeluErf, GeluTanh and Silu");
        }
    }

    /// <summary>1/(1 + exp(−x)).</summary>
    public static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    /// <summary>
    /// The attention probabilities of query row i (one per key it may see; the rest are masked, so the array has
    /// that many entries) and the row's log-sum-exp (−∞ when it sees no key).
    /// </summary>
    public static double[] Probabilities(double[] q, double[] k, int b, int h, int kvh, int heads, int kvHeads, int tq, int tk, int headDim, int i, bool causal, double scale, out double lse)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        int visible = causal ? Math.Clamp(i + (tk - tq) + 1, 0, tk) : tk;
        var s = new double[visible];
        long qo = (((long)(b * heads + h) * tq) + i) * headDim;
        for (int j = 0; j < visible; j++)
        {
            long ko = (((long)(b * kvHeads + kvh) * tk) + j) * headDim;
            double dot = 0;
            for (int d = 0; d < headDim; d++)
            {
                dot += q[qo + d] * k[ko + d];
            }
            s[j] = scale * dot;
        }
        if (visible == 0)
        {
            lse = double.NegativeInfinity;
            return s;
        }
        lse = LogSumExp(s, 0, visible);
        for (int j = 0; j < visible; j++)
        {
            s[j] = Math.Exp(s[j] - lse);
        }
        return s;
    }

    /// <summary>
    /// max + log Σ exp(x − max) over x[offset..offset+count): −∞ = log 0 when no element is above −∞ (none at all,
    /// or all −∞: the sum is empty, as for an attention row that sees no key); NaN when any element is NaN or one is
    /// +∞ (x − max is then ∞ − ∞, as softmax's definition through the max gives).
    /// </summary>
    public static double LogSumExp(double[] x, int offset, int count)
    {
        ArgumentNullException.ThrowIfNull(x);
        double max = RowMax(x, offset, count);
        if (double.IsNegativeInfinity(max))
        {
            return max;
        }
        if (double.IsNaN(max) || double.IsInfinity(max))
        {
            return double.NaN;
        }
        double sum = 0;
        for (int c = 0; c < count; c++)
        {
            sum += Math.Exp(x[offset + c] - max);
        }
        return max + Math.Log(sum);
    }

    /// <summary>The largest of x[offset..offset+count) (NaN when any is NaN; −∞ for none).</summary>
    public static double RowMax(double[] x, int offset, int count)
    {
        ArgumentNullException.ThrowIfNull(x);
        double max = double.NegativeInfinity;
        for (int c = 0; c < count; c++)
        {
            double v = x[offset + c];
            if (double.IsNaN(v))
            {
                return v;
            }
            max = Math.Max(max, v);
        }
        return max;
    }

    /// <summary>
    /// One AdamW step (IFusedKernels.AdamW): m' = β1·m + (1 − β1)·g; v' = β2·v + (1 − β2)·g²;
    /// u = (m'/(1 − β1^step))/(√(v'/(1 − β2^step)) + eps) + wd·p; p' = p − lr·u.
    /// </summary>
    public static (double[] Param, double[] M, double[] V) AdamW(double[] param, double[] grad, double[] m, double[] v, AdamWConfig config, long step)
    {
        var (u, m2, v2) = AdamUpdate(param, grad, m, v, config, step);
        var p2 = new double[param.Length];
        for (int i = 0; i < param.Length; i++)
        {
            p2[i] = param[i] - config.LearningRate * u[i];
        }
        return (p2, m2, v2);
    }

    /// <summary>One LAMB step: the AdamW update u scaled by r = ‖p‖/‖u‖ (1 when either norm is 0): p' = p − lr·r·u.</summary>
    public static (double[] Param, double[] M, double[] V) Lamb(double[] param, double[] grad, double[] m, double[] v, AdamWConfig config, long step)
    {
        var (u, m2, v2) = AdamUpdate(param, grad, m, v, config, step);
        double ratio = TrustRatio(Norm(param), Norm(u), 0, 1);
        var p2 = new double[param.Length];
        for (int i = 0; i < param.Length; i++)
        {
            p2[i] = param[i] - config.LearningRate * ratio * u[i];
        }
        return (p2, m2, v2);
    }

    /// <summary>
    /// One LARS step: local = trust·‖p‖/(‖g‖ + wd·‖p‖ + eps) (1 when a norm is 0); buf' = momentum·buf + local·(g + wd·p);
    /// p' = p − lr·buf'.
    /// </summary>
    public static (double[] Param, double[] Buffer) Lars(double[] param, double[] grad, double[] buffer, LarsConfig config)
    {
        ArgumentNullException.ThrowIfNull(param);
        ArgumentNullException.ThrowIfNull(grad);
        ArgumentNullException.ThrowIfNull(buffer);
        double local = LarsLocalRate(param, grad, config);
        var p2 = new double[param.Length];
        var b2 = new double[param.Length];
        for (int i = 0; i < param.Length; i++)
        {
            b2[i] = config.Momentum * buffer[i] + local * (grad[i] + config.WeightDecay * param[i]);
            p2[i] = param[i] - config.LearningRate * b2[i];
        }
        return (p2, b2);
    }

    /// <summary>LARS's local rate trust·‖p‖/(‖g‖ + wd·‖p‖ + eps), 1 when ‖p‖ or ‖g‖ is 0.</summary>
    public static double LarsLocalRate(double[] param, double[] grad, LarsConfig config)
    {
        double pn = Norm(param), gn = Norm(grad);
        return pn > 0 && gn > 0 ? config.TrustCoefficient * pn / (gn + config.WeightDecay * pn + config.Epsilon) : 1;
    }

    /// <summary>The AdamW direction u (weight decay included) and the new moments.</summary>
    public static (double[] U, double[] M, double[] V) AdamUpdate(double[] param, double[] grad, double[] m, double[] v, AdamWConfig config, long step)
    {
        ArgumentNullException.ThrowIfNull(param);
        ArgumentNullException.ThrowIfNull(grad);
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(v);
        double c1 = 1 - Math.Pow(config.Beta1, step);
        double c2 = 1 - Math.Pow(config.Beta2, step);
        var u = new double[param.Length];
        var m2 = new double[param.Length];
        var v2 = new double[param.Length];
        for (int i = 0; i < param.Length; i++)
        {
            m2[i] = config.Beta1 * m[i] + (1 - config.Beta1) * grad[i];
            v2[i] = config.Beta2 * v[i] + (1 - config.Beta2) * grad[i] * grad[i];
            u[i] = m2[i] / c1 / (Math.Sqrt(v2[i] / c2) + config.Epsilon) + config.WeightDecay * param[i];
        }
        return (u, m2, v2);
    }

    /// <summary>‖x‖₂.</summary>
    public static double Norm(double[] x)
    {
        ArgumentNullException.ThrowIfNull(x);
        double s = 0;
        foreach (double e in x)
        {
            s += e * e;
        }
        return Math.Sqrt(s);
    }

    /// <summary>a/(b + extra) when a and b are both positive, else <paramref name="otherwise"/>.</summary>
    private static double TrustRatio(double a, double b, double extra, double otherwise) => a > 0 && b > 0 ? a / (b + extra) : otherwise;

    /// <summary>
    /// Symmetric per-row int8 quantisation: scale[r] = max|x[r]|/127 (1 for an all-zero row), q = round-half-even(x/scale)
    /// clamped to [−127, 127].
    /// </summary>
    public static (double[] Q, double[] Scale) QuantizeInt8(double[] x, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(x);
        var q = new double[(long)rows * cols];
        var scale = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double max = 0;
            for (int c = 0; c < cols; c++)
            {
                max = Math.Max(max, Math.Abs(x[r * cols + c]));
            }
            scale[r] = max == 0 ? 1 : max / 127;
            for (int c = 0; c < cols; c++)
            {
                q[r * cols + c] = Math.Clamp(Math.Round(x[r * cols + c] / scale[r], MidpointRounding.ToEven), -127, 127);
            }
        }
        return (q, scale);
    }

    private static (double Mean, double Rstd) MeanRstd(double[] x, int offset, int cols, double eps)
    {
        double mean = 0;
        for (int c = 0; c < cols; c++)
        {
            mean += x[offset + c];
        }
        mean /= cols;
        double variance = 0;
        for (int c = 0; c < cols; c++)
        {
            double d = x[offset + c] - mean;
            variance += d * d;
        }
        variance /= cols;
        return (mean, 1 / Math.Sqrt(variance + eps));
    }

    private static double RmsRstd(double[] x, int offset, int cols, double eps)
    {
        double squares = 0;
        for (int c = 0; c < cols; c++)
        {
            squares += x[offset + c] * x[offset + c];
        }
        return 1 / Math.Sqrt(squares / cols + eps);
    }
}
