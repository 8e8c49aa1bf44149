using System.CommandLine;
using System.Globalization;
using Hal.Cli.Bench;
using Spectre.Console;

namespace Hal.Cli.Commands;

/// <summary><c>hal bench gemm</c>: GEMM throughput on one backend's first device against this machine's measured peak.</summary>
internal static class BenchCommand
{
    /// <summary>
    /// One row of <c>hal bench gemm --json</c>: <c>{backend, m, n, k, dtype, gflops, peakGflops, ratioToPeak,
    /// peakVectorBits, peer, peerGflops, ratioToPeer, kernelSessions, kernelCacheHitRate, kernelCompileMs}</c>; the peer
    /// fields are null without a peer, the kernel-cache fields null for backends without compiled kernel sessions.
    /// </summary>
    internal sealed record GemmJson(
        string Backend, int M, int N, int K, string Dtype, double Gflops, double PeakGflops, double RatioToPeak, int PeakVectorBits,
        string? Peer, double? PeerGflops, double? RatioToPeer, int? KernelSessions, double? KernelCacheHitRate, double? KernelCompileMs);

    /// <summary>The values <c>--peer</c> takes besides a registered backend's name.</summary>
    internal static readonly string[] PeerNames = ["none", "openblas"];

    private static readonly int[] DefaultSizes = [256, 1024, 2048];

    public static Command Create(GlobalOptions globals)
    {
        var bench = new Command("bench", "Measure kernel throughput (a benchmark, not a test).");
        bench.Subcommands.Add(CreateGemm(globals));
        BenchCollectivesCommand.AddTo(bench, globals);
        BenchStepCommand.AddTo(bench, globals);
        return bench;
    }

    private static Command CreateGemm(GlobalOptions globals)
    {
        var backend = new Option<string>("--backend")
        {
            Description = "Backend to measure (its device 0).",
            HelpName = "NAME",
            DefaultValueFactory = _ => "cpu",
        };
        // Defaults are applied in the action rather than by DefaultValueFactory, so help prints them as written here.
        var sizes = new Option<int[]?>("--sizes")
        {
            Description = $"Comma-separated square sizes m = n = k (default {string.Join(',', DefaultSizes)}).",
            HelpName = "N,N,...",
            CustomParser = result =>
            {
                string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                if (TryParseSizes(text, out int[] parsed, out string error))
                {
                    return parsed;
                }
                result.AddError($"--sizes: {error}");
                return [];
            },
        };
        var dtype = new Option<DType?>("--dtype")
        {
            Description = "Element type: f32 (default), f64, bf16, f16.",
            HelpName = "DTYPE",
            CustomParser = result =>
            {
                string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                try
                {
                    return DTypeInfo.Parse(text);
                }
                catch (ArgumentException)
                {
                    result.AddError($"--dtype: unknown dtype '{text}'; expected one of {string.Join(", ", DTypeInfo.All.Select(d => d.Name()))}");
                    return DType.F32;
                }
            },
        };
        var peer = new Option<string?>("--peer")
        {
            Description = "What runs the same GEMMs on the same values in the same run: none, openblas, or a registered backend's name " +
                "(its device 0: cpu, npu, …). Default: openblas for --backend cpu (none when libopenblas.so.0 does not load), cpu otherwise.",
            HelpName = "none|openblas|BACKEND",
            CustomParser = result =>
            {
                string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                // Backend names are lower-case words; whether one is registered is known only once plugins load.
                if (PeerNames.Contains(text, StringComparer.Ordinal) || (text.Length > 0 && text.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '_')))
                {
                    return text;
                }
                result.AddError($"--peer: unknown peer '{text}'; expected one of {string.Join(", ", PeerNames)} or a registered backend name");
                return null;
            },
        };
        var json = new Option<bool>("--json") { Description = "Print a JSON array of {backend, m, n, k, dtype, gflops, peakGflops, ratioToPeak, peakVectorBits, peer, peerGflops, ratioToPeer}." };
        var gemm = new Command("gemm", "GFLOP/s of square GEMMs per size (median after a warm-up) and the ratio to the FMA peak measured in the same run.")
        {
            backend, sizes, dtype, peer, json,
        };
        gemm.SetAction(parse =>
        {
            using var session = globals.OpenSession(parse);
            string name = parse.GetValue(backend) ?? "cpu";
            var b = session.Runtime.GetBackend(name);
            var probe = b.Probe();
            if (!probe.Available)
            {
                throw new BackendUnavailableException(b.Name, probe.Reason ?? "no reason given");
            }
            using var gemmPeer = OpenPeer(session, b.Name, parse.GetValue(peer));
            using var device = b.Open(0);
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            // Progress goes to stderr so that --json output on stdout stays parseable.
            // An absent --sizes reads as an empty array here, not null.
            int[] sizeList = parse.GetValue(sizes) is { Length: > 0 } given ? given : DefaultSizes;
            var results = GemmBench.Run(device, sizeList, parse.GetValue(dtype) ?? DType.F32, stderr, gemmPeer);
            var rows = results.Select(r => new GemmJson(
                r.Backend, r.M, r.N, r.K, r.DType, r.Gflops, r.PeakGflops, r.RatioToPeak, r.PeakVectorBits,
                r.Peer, r.PeerGflops, r.RatioToPeer, r.KernelSessions, r.KernelCacheHitRate, r.KernelCompileMs)).ToList();
            if (parse.GetValue(json))
            {
                Output.WriteJson(stdout, rows);
            }
            else
            {
                WriteTable(stdout, rows);
            }
            return 0;
        });
        return gemm;
    }

    /// <summary>
    /// The peer named by <c>--peer</c>: none, openblas, or a registered backend's device 0. Without the option,
    /// openblas for the cpu backend (none when the library does not load) and the cpu backend for any other.
    /// </summary>
    /// <exception cref="UsageException">openblas was asked for and does not load, or the name is not a registered backend.</exception>
    private static GemmPeer? OpenPeer(HalSession session, string backend, string? peerName)
    {
        peerName ??= backend == "cpu" ? null : "cpu";
        switch (peerName)
        {
            case "none":
                return null;
            case null:
            case "openblas":
                var openBlas = OpenBlasPeer.TryLoad(Environment.ProcessorCount);
                if (openBlas is null && peerName == "openblas")
                {
                    throw new UsageException($"--peer openblas: {OpenBlasPeer.NotFoundReason}");
                }
                return openBlas is null ? null : new OpenBlasGemmPeer(openBlas);
            default:
                if (!session.Runtime.Backends.Any(x => x.Name == peerName))
                {
                    throw new UsageException($"--peer: unknown peer '{peerName}'; expected one of {string.Join(", ", PeerNames)} or a registered backend ({string.Join(", ", session.Runtime.Backends.Select(x => x.Name))})");
                }
                var peerBackend = session.Runtime.GetBackend(peerName);
                var probe = peerBackend.Probe();
                if (!probe.Available)
                {
                    throw new BackendUnavailableException(peerBackend.Name, $"--peer {peerName}: {probe.Reason ?? "no reason given"}");
                }
                return new DeviceGemmPeer(peerBackend.Open(0));
        }
    }

    /// <summary>Parses <c>256,1024,2048</c> into positive sizes.</summary>
    internal static bool TryParseSizes(string text, out int[] sizes, out string error)
    {
        var list = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n <= 0)
            {
                sizes = [];
                error = $"'{part}' in '{text}' is not a positive integer; expected e.g. 256,1024,2048";
                return false;
            }
            list.Add(n);
        }
        sizes = [.. list];
        error = "";
        return true;
    }

    private static void WriteTable(TextWriter stdout, List<GemmJson> rows)
    {
        var table = new Table().AddColumns("backend", "dtype", "size (m=n=k)", "GFLOP/s", "peak GFLOP/s", "peak FMA bits", "ratio to peak", "peer", "peer GFLOP/s", "ratio to peer");
        foreach (var r in rows)
        {
            table.AddRow(
                Markup.Escape(r.Backend),
                Markup.Escape(r.Dtype),
                r.M == r.N && r.N == r.K ? r.M.ToString(CultureInfo.InvariantCulture) : $"{r.M}x{r.N}x{r.K}",
                r.Gflops.ToString("0.0", CultureInfo.InvariantCulture),
                r.PeakGflops.ToString("0.0", CultureInfo.InvariantCulture),
                r.PeakVectorBits.ToString(CultureInfo.InvariantCulture),
                r.RatioToPeak.ToString("0.00", CultureInfo.InvariantCulture),
                Markup.Escape(r.Peer ?? "-"),
                r.PeerGflops?.ToString("0.0", CultureInfo.InvariantCulture) ?? "-",
                r.RatioToPeer?.ToString("0.00", CultureInfo.InvariantCulture) ?? "-");
        }
        Output.Console(stdout).Write(table);
    }
}
