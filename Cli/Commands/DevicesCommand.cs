using System.CommandLine;
using System.Globalization;
using Spectre.Console;

namespace Hal.Cli.Commands;

/// <summary><c>hal devices [--json]</c>: every registered backend, whether it can run here (and why not), and its devices.</summary>
internal static class DevicesCommand
{
    /// <summary>One backend in <c>hal devices --json</c>: <c>{backend, available, reason, devices}</c>.</summary>
    internal sealed record BackendJson(string Backend, bool Available, string? Reason, IReadOnlyList<DeviceJson> Devices);

    /// <summary>One device in <c>hal devices --json</c>: <c>{id, name, memoryBytes, dtypes}</c>.</summary>
    internal sealed record DeviceJson(string Id, string Name, long MemoryBytes, IReadOnlyList<string> Dtypes);

    public static Command Create(GlobalOptions globals)
    {
        var json = new Option<bool>("--json") { Description = "Print a JSON array of {backend, available, reason, devices:[{id, name, memoryBytes, dtypes}]}." };
        var command = new Command("devices", "List every registered backend, whether it is available here (and why not), and its devices.")
        {
            json,
        };
        command.SetAction(parse =>
        {
            using var session = globals.OpenSession(parse);
            var backends = Describe(session);
            var stdout = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
            {
                Output.WriteJson(stdout, backends);
            }
            else
            {
                WriteTable(stdout, backends);
            }
            return 0;
        });
        return command;
    }

    private static List<BackendJson> Describe(HalSession session) =>
        session.Runtime.ProbeAll()
            .Select(p => new BackendJson(
                p.Backend,
                p.Available,
                // An available backend may still say something (the npu backend: which providers cannot run, and why).
                p.Available ? p.Reason : p.Reason ?? "no reason given",
                p.Devices.Select(d => new DeviceJson(d.Id.ToString(), d.Name, d.MemoryBytes, d.DTypes.Select(t => t.Name()).ToList())).ToList()))
            .ToList();

    private static void WriteTable(TextWriter stdout, List<BackendJson> backends)
    {
        var table = new Table().AddColumns("backend", "status", "device", "name", "memory", "dtypes");
        foreach (var b in backends)
        {
            string status = b.Available
                ? "[green]available[/]" + (b.Reason is null ? "" : $": {Markup.Escape(b.Reason)}")
                : $"[yellow]unavailable[/]: {Markup.Escape(b.Reason ?? "")}";
            if (b.Devices.Count == 0)
            {
                table.AddRow(Markup.Escape(b.Backend), status, "-", "-", "-", "-");
                continue;
            }
            foreach (var d in b.Devices)
            {
                table.AddRow(
                    Markup.Escape(b.Backend),
                    status,
                    Markup.Escape(d.Id),
                    Markup.Escape(d.Name),
                    FormatBytes(d.MemoryBytes),
                    Markup.Escape(string.Join(' ', d.Dtypes)));
            }
        }
        Output.Console(stdout).Write(table);
    }

    /// <summary>Bytes as GiB/MiB/KiB with one decimal, for people (JSON keeps the exact count).</summary>
    internal static string FormatBytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        int unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0
            ? $"{bytes} B"
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.0} {units[unit]}");
    }
}
