using System.CommandLine;
using System.Globalization;
using Hal.Backends.Cuda.Nccl;
using Hal.Cli.Bench;
using Hal.Collectives.InProcess;
using Hal.Collectives.Mpi;
using Spectre.Console;

namespace Hal.Cli.Commands;

/// <summary>
/// <c>hal bench allreduce|allgather|reducescatter [--comm inproc|mpi] [--ranks N] [--sizes 8:128M] [--json]</c>: the
/// nccl-tests table (size, count, type, redop, time, algbw, busbw, #wrong) for one collective. Under <c>--comm mpi</c>
/// (started by mpirun, one rank per process) all-reduce is also timed through the raw <c>MPI_Allreduce</c> on the same
/// buffers, and the table shows the peer's busbw and the ratio. Only rank 0 prints.
/// </summary>
internal static class BenchCollectivesCommand
{
    /// <summary>One row of <c>--json</c>: <c>{op, comm, ranks, bytes, timeUs, algbwGBps, busbwGBps, wrong, peerBusbwGBps}</c>.</summary>
    internal sealed record CollectiveJson(string Op, string Comm, int Ranks, long Bytes, double TimeUs, double AlgbwGBps, double BusbwGBps, long Wrong, double? PeerBusbwGBps);

    /// <summary>The default size sweep.</summary>
    public const string DefaultSizes = "8:128M";

    /// <summary>The most ranks the in-process communicator runs here.</summary>
    public const int MaxInProcessRanks = 8;

    /// <summary>Adds <c>allreduce</c>, <c>allgather</c> and <c>reducescatter</c> to <paramref name="bench"/>.</summary>
    public static void AddTo(Command bench, GlobalOptions globals)
    {
        bench.Subcommands.Add(Create(BenchCollective.AllReduce, globals, "all-reduce (sum)"));
        bench.Subcommands.Add(Create(BenchCollective.AllGather, globals, "all-gather"));
        bench.Subcommands.Add(Create(BenchCollective.ReduceScatter, globals, "reduce-scatter (sum)"));
    }

    private static Command Create(BenchCollective collective, GlobalOptions globals, string what)
    {
        var comm = new Option<string>("--comm")
        {
            Description = "Communicator: inproc (ranks are threads of this process, default) or mpi (one rank per process, under mpirun).",
            HelpName = "inproc|mpi",
            DefaultValueFactory = _ => "inproc",
        };
        var ranks = new Option<int?>("--ranks")
        {
            Description = $"Number of ranks (inproc: 1–{MaxInProcessRanks}, default the processor count, at least 2; mpi: the world size).",
            HelpName = "N",
        };
        var sizes = new Option<string>("--sizes")
        {
            Description = $"Total bytes per size: MIN:MAX doubling, or a list such as 1M,64M (suffixes K, M, G = 1024ⁿ; default {DefaultSizes}).",
            HelpName = "MIN:MAX|S,S,...",
        };
        var dtype = new Option<string>("--dtype")
        {
            Description = "Element type: f32 (default), f64, f16, bf16, i32.",
            HelpName = "DTYPE",
        };
        var iterations = new Option<int?>("--iters")
        {
            Description = "Timed iterations per size (default: enough to move about 1 GiB, 5 to 50).",
            HelpName = "N",
        };
        var backend = new Option<string>("--backend")
        {
            Description = "Backend whose devices the ranks use (default cpu).",
            HelpName = "NAME",
            DefaultValueFactory = _ => "cpu",
        };
        var json = new Option<bool>("--json") { Description = "Print a JSON array of {op, comm, ranks, bytes, timeUs, algbwGBps, busbwGBps, wrong, peerBusbwGBps}." };
        string name = CollectiveBench.NameOf(collective);
        var command = new Command(name,
            $"Bus bandwidth of {what} per size, as nccl-tests reports it (median time after warm-up; every output checked bit for bit).")
        {
            comm, ranks, sizes, dtype, iterations, backend, json,
        };
        command.SetAction(parse =>
        {
            if (!TryParseSizes(parse.GetValue(sizes) ?? DefaultSizes, out long[] sizeList, out string error))
            {
                throw new UsageException($"--sizes: {error}");
            }
            var type = ParseDType(parse.GetValue(dtype));
            int? iters = parse.GetValue(iterations);
            if (iters is < 1)
            {
                throw new UsageException($"--iters: {iters} is not a positive count");
            }
            var spec = new CollectiveBenchSpec(collective, type, ReduceOp.Sum, sizeList, iters);
            string commKind = parse.GetValue(comm) ?? "inproc";
            if (commKind is not ("inproc" or "mpi"))
            {
                throw new UsageException($"--comm: '{commKind}' is not a communicator; expected inproc or mpi");
            }
            bool mpi = commKind == "mpi";
            int? requestedRanks = parse.GetValue(ranks);
            using var session = globals.OpenSession(parse);
            var rows = mpi
                ? RunMpi(session, parse.GetValue(backend) ?? "cpu", requestedRanks, spec)
                : RunInProcess(session, parse.GetValue(backend) ?? "cpu", requestedRanks, spec);
            if (rows is null)
            {
                // A rank other than 0 under mpirun: it measured, rank 0 prints.
                return 0;
            }
            var stdout = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
            {
                Output.WriteJson(stdout, rows.Select(r => new CollectiveJson(r.Op, r.Comm, r.Ranks, r.Bytes, r.TimeUs, r.AlgbwGBps, r.BusbwGBps, r.Wrong, r.PeerBusbwGBps)).ToList());
            }
            else
            {
                WriteTable(stdout, rows);
            }
            return rows.Any(r => r.Wrong > 0) ? 1 : 0;
        });
        return command;
    }

    private static List<CollectiveBenchRow> RunInProcess(HalSession session, string backendName, int? requestedRanks, CollectiveBenchSpec spec)
    {
        int n = requestedRanks ?? DefaultInProcessRanks();
        if (n < 1 || n > MaxInProcessRanks)
        {
            throw new UsageException($"--ranks: {n} is outside 1–{MaxInProcessRanks} for the in-process communicator");
        }
        var devices = RankDevices.Open(session, backendName, n);
        try
        {
            List<CollectiveBenchRow>? rows = null;
            InProcessWorld.Run(devices, c =>
            {
                // Ranks that all sit on CUDA GPUs switch to NCCL; any other group keeps the in-process communicator.
                var comm = NcclCommunicator.PreferNccl(c);
                try
                {
                    var mine = CollectiveBench.RunRank(comm, spec, peer: null);
                    if (c.Rank == 0)
                    {
                        rows = mine;
                    }
                }
                finally
                {
                    if (!ReferenceEquals(comm, c))
                    {
                        comm.Dispose();
                    }
                }
            });
            return rows ?? throw new InvalidOperationException("rank 0 returned no rows");
        }
        finally
        {
            RankDevices.Dispose(devices);
        }
    }

    private static List<CollectiveBenchRow>? RunMpi(HalSession session, string backendName, int? requestedRanks, CollectiveBenchSpec spec)
    {
        int worldSize = RankDevices.RequireMpiWorld("--comm mpi", requestedRanks);
        var device = RankDevices.Open(session, backendName, 1)[0];
        try
        {
            using var world = MpiCommunicator.InitWorld(device);
            if (world.Size != worldSize)
            {
                throw new HalException($"MPI reports {world.Size} ranks but OMPI_COMM_WORLD_SIZE says {worldSize}");
            }
            PeerAllReduce peer = (send, recv, count) => world.RawAllReduce(send, recv, count, spec.DType, spec.Op);
            var rows = CollectiveBench.RunRank(world, spec, peer);
            return world.Rank == 0 ? rows : null;
        }
        finally
        {
            device.Dispose();
        }
    }

    /// <summary>The in-process default: the processor count, at least 2 and at most <see cref="MaxInProcessRanks"/>.</summary>
    internal static int DefaultInProcessRanks() => Math.Clamp(Environment.ProcessorCount, 2, MaxInProcessRanks);

    private static DType ParseDType(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return DType.F32;
        }
        DType[] accepted = [DType.F32, DType.F64, DType.F16, DType.BF16, DType.I32];
        try
        {
            var d = DTypeInfo.Parse(text);
            if (Array.IndexOf(accepted, d) >= 0)
            {
                return d;
            }
        }
        catch (ArgumentException)
        {
            // Reported below with the accepted list.
        }
        throw new UsageException($"--dtype: '{text}' is not one of {string.Join(", ", accepted.Select(d => d.Name()))}");
    }

    /// <summary>
    /// Parses <c>--sizes</c>: comma-separated items, each a byte size (<c>1M</c>) or a doubling range <c>MIN:MAX</c>
    /// (<c>8:128M</c> = 8, 16, …, 128 MiB). Sizes are whole numbers with an optional K, M or G (powers of 1024, an
    /// optional trailing B). Gives the sizes in order of appearance, or says what is wrong.
    /// </summary>
    internal static bool TryParseSizes(string text, out long[] sizes, out string error)
    {
        const long maxBytes = 1L << 34;
        var list = new List<long>();
        sizes = [];
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "an empty size list; expected e.g. 8:128M or 1M,64M";
            return false;
        }
        foreach (string item in text.Split(',', StringSplitOptions.TrimEntries))
        {
            string[] ends = item.Split(':', StringSplitOptions.TrimEntries);
            if (ends.Length > 2)
            {
                error = $"'{item}' has more than one ':'; a range is MIN:MAX, e.g. 8:128M";
                return false;
            }
            var bounds = new long[ends.Length];
            for (int i = 0; i < ends.Length; i++)
            {
                if (!TryParseBytes(ends[i], out bounds[i], out error))
                {
                    return false;
                }
                if (bounds[i] > maxBytes)
                {
                    error = $"'{ends[i]}' is larger than the 16G this benchmark allocates at most";
                    return false;
                }
            }
            if (bounds.Length == 1)
            {
                list.Add(bounds[0]);
                continue;
            }
            if (bounds[0] > bounds[1])
            {
                error = $"the range '{item}' starts above its end";
                return false;
            }
            for (long b = bounds[0]; b <= bounds[1]; b *= 2)
            {
                list.Add(b);
            }
        }
        sizes = [.. list];
        error = "";
        return true;
    }

    private static bool TryParseBytes(string text, out long bytes, out string error)
    {
        bytes = 0;
        string t = text.EndsWith('B') || text.EndsWith('b') ? text[..^1] : text;
        long multiplier = 1;
        if (t.Length > 0)
        {
            multiplier = char.ToUpperInvariant(t[^1]) switch
            {
                'K' => 1L << 10,
                'M' => 1L << 20,
                'G' => 1L << 30,
                _ => 1,
            };
            if (multiplier != 1)
            {
                t = t[..^1];
            }
        }
        if (!long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out long value) || value <= 0 || value > (1L << 40))
        {
            error = $"'{text}' is not a positive byte count; expected e.g. 8, 64K, 128M or 1G";
            return false;
        }
        bytes = value * multiplier;
        error = "";
        return true;
    }

    private static void WriteTable(TextWriter stdout, List<CollectiveBenchRow> rows)
    {
        bool withPeer = rows.Any(r => r.PeerBusbwGBps is not null);
        var table = new Table().AddColumns("size (B)", "count (elements)", "type", "redop", "time (µs)", "algbw (GB/s)", "busbw (GB/s)", "#wrong");
        if (withPeer)
        {
            table.AddColumns("peer busbw (GB/s)", "ratio");
        }
        foreach (var column in table.Columns)
        {
            column.NoWrap();
        }
        if (rows.Count > 0)
        {
            table.Title = new TableTitle(Markup.Escape($"{rows[0].Op}, {rows[0].Comm}, {rows[0].Ranks} rank{(rows[0].Ranks == 1 ? "" : "s")}"));
        }
        foreach (var r in rows)
        {
            var cells = new List<string>
            {
                r.Bytes.ToString(CultureInfo.InvariantCulture),
                r.Count.ToString(CultureInfo.InvariantCulture),
                r.Type,
                r.RedOp,
                r.TimeUs.ToString("0.0", CultureInfo.InvariantCulture),
                r.AlgbwGBps.ToString("0.00", CultureInfo.InvariantCulture),
                r.BusbwGBps.ToString("0.00", CultureInfo.InvariantCulture),
                r.Wrong == 0 ? "0" : $"[red]{r.Wrong}[/]",
            };
            if (withPeer)
            {
                cells.Add(r.PeerBusbwGBps is { } p ? p.ToString("0.00", CultureInfo.InvariantCulture) : "-");
                cells.Add(r.PeerBusbwGBps is { } q && q > 0 ? (r.BusbwGBps / q).ToString("0.00", CultureInfo.InvariantCulture) : "-");
            }
            table.AddRow([.. cells]);
        }
        var console = Output.Console(stdout);
        // Spectre assumes 80 columns when it cannot tell (a log file, mpirun's forwarding) and would fold the
        // nccl-tests columns into unreadable slivers; one row per line reads better even where a terminal wraps it.
        console.Profile.Width = Math.Max(console.Profile.Width, 160);
        console.Write(table);
    }
}
