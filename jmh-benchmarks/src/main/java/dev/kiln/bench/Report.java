package dev.kiln.bench;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.style.Styler;

import java.awt.Color;
import java.awt.Font;
import java.io.IOException;
import java.io.Reader;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.ToDoubleFunction;

/**
 * Turns a JMH JSON result of {@link LatencyBenchmark}, {@link ThroughputBenchmark},
 * {@link ShmTransferBenchmark}, {@link CrossHostBenchmark} and {@link UdpChannelBenchmark} into the report's
 * generated parts, in one folder:
 *
 * <ul>
 *   <li>{@code results.json}: the JMH result without the raw samples, histograms and confidence
 *       intervals (sample-time histograms make the raw file megabytes), one entry per line; this
 *       class reads it back as well;
 *   <li>{@code results.md}: the machine, the run, one table of every figure, the ratios, the
 *       shared-memory transfer against memcpy, Kiln across hosts against raw Aeron UDP, the targets, and the
 *       published Ray figures
 *       (labelled as published, not measured here);
 *   <li>{@code chart.png}: median latency and pipelined throughput per scenario and path.
 * </ul>
 *
 * <pre>
 * java -Djava.awt.headless=true -cp benchmarks.jar dev.kiln.bench.Report \
 *      --json raw.json --out docs/benchmarks [--command "..."] [--load-before "..."]
 * </pre>
 *
 * Run on the machine that ran the benchmarks: it reads the machine's description from
 * {@code /proc} and resolves the {@value Scenario#AUTO} idle mode with this machine's core count.
 */
public final class Report {

    /** The in-process paths in table order; then the two floors. */
    private static final List<String> PATHS = List.of("compiled", "dynamic", "executor", "pekko", "disruptor");
    private static final Map<String, String> PATH_LABELS = Map.of(
            "compiled", "**Kiln compiled**",
            "dynamic", "Kiln dynamic (`kiln.call`)",
            "executor", "`ExecutorService` + `CompletableFuture`",
            "pekko", "Pekko typed, ask",
            "disruptor", "LMAX Disruptor (floor per hop)",
            "aeron", "Aeron IPC ping-pong, 2 JVMs (cross-process floor)",
            "memcpy", "`MemorySegment.copy` of the bytes (bandwidth floor)");
    private static final Map<String, String> CHART_LABELS = Map.of(
            "compiled", "Kiln compiled",
            "dynamic", "Kiln dynamic (kiln.call)",
            "executor", "ExecutorService + CompletableFuture",
            "pekko", "Pekko typed, ask",
            "disruptor", "LMAX Disruptor",
            "aeron", "Aeron IPC, 2 JVMs",
            "memcpy", "MemorySegment.copy");
    private static final Map<String, Color> COLORS = Map.of(
            "compiled", new Color(0xD9, 0x5F, 0x02),
            "dynamic", new Color(0x75, 0x70, 0xB3),
            "executor", new Color(0x99, 0x99, 0x99),
            "pekko", new Color(0x1B, 0x9E, 0x77),
            "disruptor", new Color(0x33, 0x33, 0x33),
            "aeron", new Color(0x66, 0xA6, 0x1E),
            "memcpy", new Color(0xE6, 0xAB, 0x02));
    private static final int[] WINDOWS = {1, 4, 16};

    /** One benchmark, one parameter set: what the report needs of JMH's entry. */
    record Result(String benchmark, String method, String mode, Map<String, String> params, double score, double p50,
                  double p99, double allocPerOp) {

        Scenario scenario() {
            String s = params.get("scenario");
            return s == null ? Scenario.SINGLE : Scenario.valueOf(s);
        }

        int window() {
            String w = params.get("window");
            return w == null ? 1 : Integer.parseInt(w);
        }

        boolean latency() {
            return mode.equals("sample");
        }
    }

    private final List<Result> results;
    private final JsonObject first;

    private Report(List<Result> results, JsonObject first) {
        this.results = results;
        this.first = first;
    }

    /**
     * @param args {@code --json FILE} the JMH result; {@code --out DIR} where to write; optionally
     *             {@code --command TEXT} the command that ran JMH, {@code --load-before TEXT} the
     *             load average when it started
     * @throws IOException if a file cannot be read or written
     */
    public static void main(String[] args) throws IOException {
        Map<String, String> options = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            options.put(args[i], args[i + 1]);
        }
        if (!options.containsKey("--json") || !options.containsKey("--out")) {
            System.err.println("usage: Report --json JMH_RESULT.json --out DIR [--command TEXT] [--load-before TEXT]");
            System.exit(2);
        }
        java.nio.file.Path out = java.nio.file.Path.of(options.get("--out"));
        Files.createDirectories(out);
        JsonArray raw;
        try (Reader r = Files.newBufferedReader(java.nio.file.Path.of(options.get("--json")), StandardCharsets.UTF_8)) {
            raw = JsonParser.parseReader(r).getAsJsonArray();
        }
        if (raw.isEmpty()) {
            throw new IllegalArgumentException(options.get("--json") + " holds no results");
        }
        JsonArray trimmed = trim(raw);
        // One entry per line: small, and a re-run shows up in a diff entry by entry.
        try (Writer w = Files.newBufferedWriter(out.resolve("results.json"), StandardCharsets.UTF_8)) {
            Gson gson = new GsonBuilder().disableHtmlEscaping().create();
            w.write("[\n");
            for (int i = 0; i < trimmed.size(); i++) {
                w.write(gson.toJson(trimmed.get(i)));
                w.write(i + 1 < trimmed.size() ? ",\n" : "\n");
            }
            w.write("]\n");
        }
        Report report = new Report(parse(trimmed), trimmed.get(0).getAsJsonObject());
        Files.writeString(out.resolve("results.md"),
                report.markdown(options.get("--command"), options.get("--load-before")), StandardCharsets.UTF_8);
        report.chart(out.resolve("chart.png"));
        System.out.println("Report: " + out.resolve("results.md") + ", " + out.resolve("chart.png") + ", "
                + out.resolve("results.json"));
    }

    /** Drops raw samples and histograms, and the secondary metrics other than allocation per operation. */
    private static JsonArray trim(JsonArray raw) {
        JsonArray trimmed = raw.deepCopy();
        for (JsonElement e : trimmed) {
            JsonObject o = e.getAsJsonObject();
            JsonObject primary = o.getAsJsonObject("primaryMetric");
            primary.remove("rawData");
            primary.remove("rawDataHistogram");
            primary.remove("scoreConfidence");
            JsonObject secondary = o.getAsJsonObject("secondaryMetrics");
            JsonObject kept = new JsonObject();
            if (secondary != null && secondary.has("gc.alloc.rate.norm")) {
                JsonObject norm = secondary.getAsJsonObject("gc.alloc.rate.norm");
                norm.remove("rawData");
                norm.remove("scoreConfidence");
                norm.remove("scorePercentiles");
                kept.add("gc.alloc.rate.norm", norm);
            }
            o.add("secondaryMetrics", kept);
        }
        return trimmed;
    }

    private static List<Result> parse(JsonArray entries) {
        List<Result> results = new ArrayList<>();
        for (JsonElement e : entries) {
            JsonObject o = e.getAsJsonObject();
            String benchmark = o.get("benchmark").getAsString();
            Map<String, String> params = new LinkedHashMap<>();
            if (o.has("params")) {
                for (Map.Entry<String, JsonElement> p : o.getAsJsonObject("params").entrySet()) {
                    params.put(p.getKey(), p.getValue().getAsString());
                }
            }
            JsonObject primary = o.getAsJsonObject("primaryMetric");
            double p50 = Double.NaN;
            double p99 = Double.NaN;
            if (primary.has("scorePercentiles")) {
                JsonObject pct = primary.getAsJsonObject("scorePercentiles");
                p50 = pct.get("50.0").getAsDouble();
                p99 = pct.get("99.0").getAsDouble();
            }
            double alloc = Double.NaN;
            JsonObject secondary = o.getAsJsonObject("secondaryMetrics");
            if (secondary != null && secondary.has("gc.alloc.rate.norm")) {
                alloc = secondary.getAsJsonObject("gc.alloc.rate.norm").get("score").getAsDouble();
            }
            String[] names = benchmark.split("\\.");
            results.add(new Result(names[names.length - 2], names[names.length - 1], o.get("mode").getAsString(),
                    params, primary.get("score").getAsDouble(), p50, p99, alloc));
        }
        return results;
    }

    private Result latency(String method, Scenario scenario) {
        for (Result r : results) {
            if (r.latency() && r.method().equals(method) && r.scenario() == scenario) {
                return r;
            }
        }
        return null;
    }

    private Result throughput(String method, Scenario scenario, int window) {
        for (Result r : results) {
            if (r.benchmark().equals("ThroughputBenchmark") && r.method().equals(method) && r.scenario() == scenario
                    && r.window() == window) {
                return r;
            }
        }
        return null;
    }

    /** @return operations per second of {@link ShmTransferBenchmark} for a size and a way, or null if not run */
    private Result transfer(long bytes, ShmTransferBenchmark.Way way) {
        for (Result r : results) {
            if (r.benchmark().equals("ShmTransferBenchmark") && Long.parseLong(r.params().get("bytes")) == bytes
                    && r.params().get("way").equals(way.name())) {
                return r;
            }
        }
        return null;
    }

    /** @return the tensor sizes {@link ShmTransferBenchmark} ran, ascending */
    private List<Long> transferSizes() {
        return results.stream().filter(r -> r.benchmark().equals("ShmTransferBenchmark"))
                .map(r -> Long.parseLong(r.params().get("bytes"))).distinct().sorted().toList();
    }

    /** @return bytes per second of a transfer over the copy's, or NaN if either did not run */
    private double transferRatio(long bytes, ShmTransferBenchmark.Way way) {
        Result r = transfer(bytes, way);
        Result copy = transfer(bytes, ShmTransferBenchmark.Way.MEMCPY);
        return r == null || copy == null ? Double.NaN : r.score() / copy.score();
    }

    private double median(String method, Scenario scenario) {
        Result r = latency(method, scenario);
        return r == null ? Double.NaN : r.p50();
    }

    private double rate(String method, Scenario scenario, int window) {
        Result r = throughput(method, scenario, window);
        return r == null ? Double.NaN : r.score();
    }

    /** How the path's threads waited, as run on this machine. */
    private static String idle(String method, Result r) {
        return switch (method) {
            case "compiled", "disruptor", "aeron" -> {
                String param = r.params().getOrDefault("idle", Scenario.AUTO);
                String mode = r.scenario().idle(param).name();
                yield param.equals(Scenario.AUTO) ? mode + " (auto)" : mode;
            }
            case "memcpy" -> "";
            default -> "park";
        };
    }

    private String markdown(String command, String loadBefore) {
        StringBuilder md = new StringBuilder();
        md.append("# Benchmark results (generated)\n\n");
        md.append("Generated by `dev.kiln.bench.Report` from `results.json`; do not edit: `./bench` writes it again. ")
                .append("What the scenarios measure and how to read the figures: [../benchmarks.md](../benchmarks.md).\n\n");
        machine(md, command, loadBefore);
        table(md);
        ratios(md);
        tensors(md);
        transfers(md);
        crossHost(md);
        udpChannel(md);
        targets(md);
        published(md);
        return md.toString();
    }

    private void machine(StringBuilder md, String command, String loadBefore) {
        md.append("## Machine and run\n\n| | |\n| --- | --- |\n");
        md.append("| CPU | ").append(cpuModel()).append(", ").append(Runtime.getRuntime().availableProcessors())
                .append(" cores available to the JVM |\n");
        md.append("| memory | ").append(memory()).append(" |\n");
        md.append("| kernel | Linux ").append(read("/proc/sys/kernel/osrelease").strip()).append(" |\n");
        md.append("| JDK | ").append(str("vmName")).append(' ').append(str("jdkVersion")).append(" (")
                .append(str("vmVersion")).append(") |\n");
        md.append("| JMH | ").append(str("jmhVersion")).append(", ").append(first.get("forks").getAsInt())
                .append(" fork(s), warm-up ").append(first.get("warmupIterations").getAsInt()).append(" x ")
                .append(str("warmupTime")).append(", measurement ").append(first.get("measurementIterations").getAsInt())
                .append(" x ").append(str("measurementTime")).append(" |\n");
        md.append("| JVM flags | `").append(String.join(" ", jvmArgs())).append("` |\n");
        if (loadBefore != null) {
            md.append("| load average (1, 5, 15 min) | before: ").append(loadBefore).append("; after: ")
                    .append(loadAverage()).append(" |\n");
        }
        if (command != null) {
            md.append("| command | `").append(command).append("` |\n");
        }
        md.append('\n');
    }

    private void table(StringBuilder md) {
        md.append("## Every figure\n\n");
        md.append("Median and p99: `LatencyBenchmark` (sample time, one execution at a time, microseconds). ")
                .append("Executions/s: `ThroughputBenchmark` with 1, 4 or 16 executions in flight (the compiled graph's ")
                .append("`maxInflight`). Allocation: `gc.alloc.rate.norm` of the 1-in-flight throughput run, bytes per ")
                .append("execution (floors: of the sample-time run, which adds JMH's own few bytes). `—`: not run.\n\n");
        md.append("| scenario | path | idle | median (us) | p99 (us) | exec/s, 1 in flight | 4 in flight | 16 in flight | B/exec |\n");
        md.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for (Scenario s : Scenario.values()) {
            boolean firstRow = true;
            List<String> methods = new ArrayList<>(PATHS);
            if (s == Scenario.SINGLE) {
                methods.add("aeron");
            }
            if (s.tensor()) {
                methods.add("memcpy");
            }
            for (String m : methods) {
                Result lat = latency(m, s);
                Result one = throughput(m, s, 1);
                if (lat == null && one == null) {
                    continue;
                }
                Result any = lat != null ? lat : one;
                md.append("| ").append(firstRow ? "**" + label(s) + "**" : "").append(" | ").append(PATH_LABELS.get(m))
                        .append(" | ").append(idle(m, any))
                        .append(" | ").append(lat == null ? "—" : us(lat.p50()))
                        .append(" | ").append(lat == null ? "—" : us(lat.p99()));
                for (int w : WINDOWS) {
                    md.append(" | ").append(count(rate(m, s, w)));
                }
                double alloc = one != null ? one.allocPerOp() : lat.allocPerOp();
                md.append(" | ").append(bytes(alloc)).append(" |\n");
                firstRow = false;
            }
        }
        md.append('\n');
    }

    private void ratios(StringBuilder md) {
        md.append("## Ratios\n\n");
        md.append("Latency ratios divide medians of the same run: above 1, Kiln compiled is faster. The Disruptor column ")
                .append("is compiled / Disruptor: how far Kiln is above the in-process floor (target: at most 3). ")
                .append("Pipelining: compiled executions/s with 16 in flight over 1 in flight.\n\n");
        md.append("| scenario | dynamic / compiled | executor / compiled | Pekko / compiled | compiled / Disruptor "
                + "| pipelining gain (16 vs 1) | compiled / dynamic, 16 in flight (exec/s) |\n");
        md.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for (Scenario s : Scenario.values()) {
            double c = median("compiled", s);
            md.append("| ").append(label(s))
                    .append(" | ").append(ratio(median("dynamic", s) / c))
                    .append(" | ").append(ratio(median("executor", s) / c))
                    .append(" | ").append(ratio(median("pekko", s) / c))
                    .append(" | ").append(ratio(c / median("disruptor", s)))
                    .append(" | ").append(ratio(rate("compiled", s, 16) / rate("compiled", s, 1)))
                    .append(" | ").append(ratio(rate("compiled", s, 16) / rate("dynamic", s, 16)))
                    .append(" |\n");
        }
        double aeron = median("aeron", Scenario.SINGLE);
        md.append("\nCross-process floor: Aeron IPC ping-pong between two JVMs, median ").append(us(aeron))
                .append(" us, p99 ").append(latency("aeron", Scenario.SINGLE) == null ? "—"
                        : us(latency("aeron", Scenario.SINGLE).p99()))
                .append(" us. Kiln has no cross-process transport yet, so no Kiln row compares with it; for scale, it is ")
                .append(ratio(aeron / median("compiled", Scenario.SINGLE)))
                .append(" Kiln's in-process single-actor median.\n\n");
    }

    private void tensors(StringBuilder md) {
        md.append("## Tensor payloads and the bandwidth floor\n\n");
        md.append("In process a tensor travels by reference: no byte is copied, so the round trip does not grow with ")
                .append("the size. \"Handed over\" is the tensor's size over the compiled median: what a copy would ")
                .append("have to reach to keep up, not a bandwidth.\n\n");
        md.append("| tensor | compiled median (us) | memcpy median (us) | memcpy (GB/s) | handed over (GB/s) "
                + "| memcpy / compiled |\n");
        md.append("| --- | ---: | ---: | ---: | ---: | ---: |\n");
        for (Scenario s : Scenario.values()) {
            if (!s.tensor()) {
                continue;
            }
            double c = median("compiled", s);
            double copy = median("memcpy", s);
            md.append("| ").append(label(s)).append(" | ").append(us(c)).append(" | ").append(us(copy))
                    .append(" | ").append(gbps(s.tensorBytes(), copy)).append(" | ").append(gbps(s.tensorBytes(), c))
                    .append(" | ").append(ratio(copy / c)).append(" |\n");
        }
        md.append('\n');
    }

    private void transfers(StringBuilder md) {
        List<Long> sizes = transferSizes();
        if (sizes.isEmpty()) {
            return;
        }
        md.append("## Shared-memory transfer vs memcpy\n\n");
        md.append("`ShmTransferBenchmark` (throughput mode): one operation moves one tensor of the size through a ")
                .append("`ShmChannel` in `/dev/shm` (slots sized to fit, growth off), or copies it with ")
                .append("`MemorySegment.copy` between two off-heap segments (the floor). GB/s = operations/s x size / ")
                .append("10^9; % is the channel's bytes/s over the copy's, both of this run, measured one after the ")
                .append("other. Same process: one thread offers (one copy into the slot), polls (a zero-copy view), ")
                .append("reads the view's first and last element and releases. Cross-process: this JVM writes, a ")
                .append("second JVM maps the file, checks each view's first and last element and releases it; 1 or 4 ")
                .append("tensors in flight. B/op: `gc.alloc.rate.norm` of the benchmark JVM (the writer's, for ")
                .append("cross-process); at large sizes it is JMH's own background allocation over few operations, as ")
                .append("the memcpy column shows. The target (DESIGN.md): at least 70 % of memcpy at 64 MiB. On a ")
                .append("shared machine the ratio swings with the load: benchmarks.md has repeated runs.\n\n");
        md.append("| tensor | memcpy (GB/s) | same process (GB/s) | % | cross-process, 1 in flight (GB/s) | % "
                + "| cross-process, 4 in flight (GB/s) | % | B/op: memcpy / same / cross 1 / cross 4 |\n");
        md.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for (long bytes : sizes) {
            md.append("| ").append(size(bytes));
            StringBuilder allocs = new StringBuilder();
            for (ShmTransferBenchmark.Way way : ShmTransferBenchmark.Way.values()) {
                Result r = transfer(bytes, way);
                md.append(" | ").append(r == null ? "—" : gbps(bytes * r.score()));
                if (way != ShmTransferBenchmark.Way.MEMCPY) {
                    md.append(" | ").append(percent(transferRatio(bytes, way)));
                }
                allocs.append(allocs.isEmpty() ? "" : " / ").append(r == null ? "—" : bytes(r.allocPerOp()));
            }
            md.append(" | ").append(allocs).append(" |\n");
        }
        md.append('\n');
    }

    /** @return the result of a {@link CrossHostBenchmark} method for an MTU (and a size, or 0), or null if not run */
    private Result crossHost(String method, int mtu, long bytes) {
        return crossHost(method, mtu, bytes, false);
    }

    /**
     * @return the result of a {@link CrossHostBenchmark} method for an MTU, a size (or 0) and with or without
     *         authenticated data frames (raw Aeron has no such parameter: it counts as without), or null if not run
     */
    private Result crossHost(String method, int mtu, long bytes, boolean authenticated) {
        for (Result r : results) {
            if (r.benchmark().equals("CrossHostBenchmark") && r.method().equals(method)
                    && Integer.parseInt(r.params().get("mtu")) == mtu
                    && (bytes == 0 || Long.parseLong(r.params().get("bytes")) == bytes)
                    && Boolean.parseBoolean(r.params().getOrDefault("authenticate", "false")) == authenticated) {
                return r;
            }
        }
        return null;
    }

    private void crossHost(StringBuilder md) {
        List<Integer> mtus = results.stream().filter(r -> r.benchmark().equals("CrossHostBenchmark"))
                .map(r -> Integer.parseInt(r.params().get("mtu"))).distinct().sorted().toList();
        if (mtus.isEmpty()) {
            return;
        }
        md.append("## Across hosts: Aeron UDP over loopback\n\n");
        md.append("`CrossHostBenchmark`: a Kiln driver (`host-a`) and one joined `KilnWorker` JVM (`host-b`, its own ")
                .append("Aeron and shared-memory directories), the actor on the worker, both edges AERON_UDP; against raw ")
                .append("Aeron UDP between two embedded media drivers of one JVM (`UdpEcho`), measured in the same run. ")
                .append("Loopback only; both \"hosts\" share this machine's cores. Round trip: sample time, one ")
                .append("execution at a time, an int there and back (raw: a 4-byte ping and a 4-byte ack). Bandwidth: ")
                .append("throughput mode, one tensor (raw: one message in MTU-sized frames, reassembled and acked) at a ")
                .append("time, MB/s = operations/s x size / 10^6. Ratio: Kiln over raw Aeron (latency: above 1, Kiln is ")
                .append("slower; bandwidth: below 1, Kiln is slower).\n\n");
        md.append("| MTU | round trip: Kiln median / p99 / mean (us) | raw Aeron median / p99 / mean (us) | Kiln / raw (median) ");
        List<Long> sizes = results.stream().filter(r -> r.benchmark().equals("CrossHostBenchmark") && r.params().containsKey("bytes"))
                .map(r -> Long.parseLong(r.params().get("bytes"))).distinct().sorted().toList();
        for (long bytes : sizes) {
            md.append("| ").append(size(bytes)).append(": Kiln / raw (MB/s) | Kiln / raw ");
        }
        md.append("|\n| ---: | ---: | ---: | ---: |").append(" ---: | ---: |".repeat(sizes.size())).append('\n');
        for (int mtu : mtus) {
            Result k = crossHost("kilnRoundTrip", mtu, 0);
            Result a = crossHost("aeronUdpRoundTrip", mtu, 0);
            md.append("| ").append(mtu).append(" | ").append(k == null ? "—" : us(k.p50()) + " / " + us(k.p99()) + " / "
                            + us(k.score()))
                    .append(" | ").append(a == null ? "—" : us(a.p50()) + " / " + us(a.p99()) + " / " + us(a.score()))
                    .append(" | ").append(k == null || a == null ? "—" : ratio(k.p50() / a.p50()));
            for (long bytes : sizes) {
                Result kt = crossHost("kilnTensor", mtu, bytes);
                Result at = crossHost("aeronUdpBulk", mtu, bytes);
                md.append(" | ").append(kt == null ? "—" : mbps(bytes * kt.score())).append(" / ")
                        .append(at == null ? "—" : mbps(bytes * at.score()))
                        .append(" | ").append(kt == null || at == null ? "—" : ratio(kt.score() / at.score()));
            }
            md.append(" |\n");
        }
        md.append('\n');
        authenticationCost(md, mtus, sizes);
    }

    /** Kiln across hosts with authenticated data frames against the same runs without, if they ran. */
    private void authenticationCost(StringBuilder md, List<Integer> mtus, List<Long> sizes) {
        if (mtus.stream().noneMatch(m -> crossHost("kilnRoundTrip", m, 0, true) != null
                || sizes.stream().anyMatch(b -> crossHost("kilnTensor", m, b, true) != null))) {
            return;
        }
        md.append("Authenticated data frames (`KilnOptions.authenticateData`, an HMAC-SHA256 tag on every frame and ")
                .append("release message; see security.md), against the same Kiln runs without: with / without. Round ")
                .append("trip: median and p99 (us); bandwidth: MB/s.\n\n");
        md.append("| MTU | round trip median: with / without | ratio | p99: with / without ");
        for (long bytes : sizes) {
            md.append("| ").append(size(bytes)).append(": with / without (MB/s) | ratio ");
        }
        md.append("|\n| ---: | ---: | ---: | ---: |").append(" ---: | ---: |".repeat(sizes.size())).append('\n');
        for (int mtu : mtus) {
            Result with = crossHost("kilnRoundTrip", mtu, 0, true);
            Result without = crossHost("kilnRoundTrip", mtu, 0, false);
            md.append("| ").append(mtu).append(" | ")
                    .append(with == null ? "—" : us(with.p50())).append(" / ").append(without == null ? "—" : us(without.p50()))
                    .append(" | ").append(with == null || without == null ? "—" : ratio(with.p50() / without.p50()))
                    .append(" | ").append(with == null ? "—" : us(with.p99())).append(" / ")
                    .append(without == null ? "—" : us(without.p99()));
            for (long bytes : sizes) {
                Result tw = crossHost("kilnTensor", mtu, bytes, true);
                Result to = crossHost("kilnTensor", mtu, bytes, false);
                md.append(" | ").append(tw == null ? "—" : mbps(bytes * tw.score())).append(" / ")
                        .append(to == null ? "—" : mbps(bytes * to.score()))
                        .append(" | ").append(tw == null || to == null ? "—" : ratio(tw.score() / to.score()));
            }
            md.append(" |\n");
        }
        md.append('\n');
    }

    /** {@link UdpChannelBenchmark}: the channel alone, with and without authenticated frames, if it ran. */
    private void udpChannel(StringBuilder md) {
        List<Result> runs = results.stream().filter(r -> r.benchmark().equals("UdpChannelBenchmark")).toList();
        if (runs.isEmpty()) {
            return;
        }
        md.append("## Authenticated frames on the UDP channel alone\n\n");
        md.append("`UdpChannelBenchmark`: one `AeronUdpChannel` between two media drivers of one JVM over loopback, ")
                .append("both sides owned by the benchmark thread (no executor, no worker JVM, no hand-off), one F32 ")
                .append("tensor at a time; with and without a key, in the same run. MB/s = operations/s x size / 10^6.\n\n");
        md.append("| MTU | size | with key (MB/s) | without (MB/s) | with / without |\n| ---: | ---: | ---: | ---: | ---: |\n");
        List<String> keys = runs.stream().map(r -> r.params().get("mtu") + "/" + r.params().get("bytes")).distinct()
                .toList();
        for (String key : keys) {
            String mtu = key.substring(0, key.indexOf('/'));
            long bytes = Long.parseLong(key.substring(key.indexOf('/') + 1));
            Result with = null;
            Result without = null;
            for (Result r : runs) {
                if (r.params().get("mtu").equals(mtu) && Long.parseLong(r.params().get("bytes")) == bytes) {
                    if (Boolean.parseBoolean(r.params().get("authenticate"))) {
                        with = r;
                    } else {
                        without = r;
                    }
                }
            }
            md.append("| ").append(mtu).append(" | ").append(size(bytes)).append(" | ")
                    .append(with == null ? "—" : mbps(bytes * with.score())).append(" | ")
                    .append(without == null ? "—" : mbps(bytes * without.score())).append(" | ")
                    .append(with == null || without == null ? "—" : ratio(with.score() / without.score())).append(" |\n");
        }
        md.append('\n');
    }

    private void targets(StringBuilder md) {
        double single = median("compiled", Scenario.SINGLE);
        double dynamic = median("dynamic", Scenario.SINGLE);
        md.append("## Targets (DESIGN.md)\n\n| target | measured | met |\n| --- | --- | --- |\n");
        md.append("| single-actor compiled round trip < 1 us median, in process | ").append(us(single)).append(" us | ")
                .append(met(single, single < 1.0)).append(" |\n");
        md.append("| >= 20x below the dynamic path (single actor, medians) | ").append(ratio(dynamic / single))
                .append(" | ").append(met(dynamic / single, dynamic / single >= 20)).append(" |\n");
        for (Scenario s : List.of(Scenario.SINGLE, Scenario.CHAIN4)) {
            double r = median("compiled", s) / median("disruptor", s);
            md.append("| within 3x of the Disruptor floor per hop (").append(label(s)).append(") | ").append(ratio(r))
                    .append(" | ").append(met(r, r <= 3)).append(" |\n");
        }
        long largest = 64L << 20;
        double cross4 = transferRatio(largest, ShmTransferBenchmark.Way.CROSS_PROCESS_4);
        md.append("| shared-memory channel, 64 MiB tensor: >= 70 % of memcpy in the same run (cross-process, 4 in flight)"
                        + " | ").append(percent(cross4)).append(" (1 in flight ")
                .append(percent(transferRatio(largest, ShmTransferBenchmark.Way.CROSS_PROCESS_1))).append(", same process ")
                .append(percent(transferRatio(largest, ShmTransferBenchmark.Way.SAME_PROCESS))).append(") | ")
                .append(met(cross4, cross4 >= 0.7)).append(" |\n");
        md.append("| cross-process within 2x of the Aeron floor | Aeron floor ").append(us(median("aeron", Scenario.SINGLE)))
                .append(" us; Kiln's cross-process transport has not landed | not measurable yet |\n");
        StringBuilder allocs = new StringBuilder();
        for (Scenario s : Scenario.values()) {
            Result r = throughput("compiled", s, 1);
            if (r != null) {
                allocs.append(allocs.isEmpty() ? "" : ", ").append(label(s)).append(' ').append(bytes(r.allocPerOp()));
            }
        }
        md.append("| zero buffer allocation per execution | B/execution, compiled: ").append(allocs)
                .append(" | no buffer is allocated; what is allocated is listed in benchmarks.md |\n\n");
    }

    private static void published(StringBuilder md) {
        md.append("## Published reference figures (not measured here)\n\n");
        md.append("Quoted from Ray's documentation and the pull request that introduced Ray Compiled Graphs; ")
                .append("other hardware, Python, not re-measured. For orientation only.\n\n");
        md.append("| system | figure | per execution |\n| --- | --- | ---: |\n");
        md.append("| Ray Compiled Graphs (docs) | < 50 us per execution | < 50 us |\n");
        md.append("| Ray Compiled Graphs, single actor (PR) | 20,931 calls/s | 47.8 us |\n");
        md.append("| Ray Compiled Graphs, chain of 4 actors (PR) | 5,738 calls/s | 174 us |\n");
        md.append("| Ray Compiled Graphs, scatter-gather to 4 (PR) | 8,897 calls/s | 112 us |\n");
        md.append("| Ray dynamic tasks (docs) | ~1 ms per task | ~1,000 us |\n");
        md.append("| Ray dynamic, single actor / chain of 4 / scatter-gather (PR) | 593 / 156 / 249 calls/s "
                + "| 1,686 / 6,410 / 4,016 us |\n\n");
    }

    private void chart(java.nio.file.Path file) throws IOException {
        List<String> categories = new ArrayList<>();
        for (Scenario s : Scenario.values()) {
            categories.add(shortLabel(s));
        }
        CategoryChart latency = chart("Median latency of one execution (microseconds, log scale; lower is better)",
                "microseconds");
        for (String m : List.of("compiled", "dynamic", "executor", "pekko", "disruptor", "aeron", "memcpy")) {
            addSeries(latency, CHART_LABELS.get(m), COLORS.get(m), categories, s -> median(m, s));
        }
        CategoryChart throughput = chart("Executions per second with 16 in flight (log scale; higher is better)",
                "executions / s");
        addSeries(throughput, CHART_LABELS.get("compiled"), COLORS.get("compiled"), categories,
                s -> rate("compiled", s, 16));
        addSeries(throughput, "Kiln compiled, 1 in flight", new Color(0xFD, 0xB8, 0x63), categories,
                s -> rate("compiled", s, 1));
        for (String m : PATHS.subList(1, PATHS.size())) {
            addSeries(throughput, CHART_LABELS.get(m), COLORS.get(m), categories, s -> rate(m, s, 16));
        }
        List<CategoryChart> charts = new ArrayList<>();
        for (CategoryChart c : List.of(latency, throughput)) {
            if (!c.getSeriesMap().isEmpty()) { // a run of only some benchmarks may leave a panel empty
                logBounds(c);
                charts.add(c);
            }
        }
        if (!charts.isEmpty()) {
            BitmapEncoder.saveBitmap(charts, charts.size(), 1, file.toString(), BitmapEncoder.BitmapFormat.PNG);
        }
    }

    /** Adds a series unless it has no value at all; a scenario without a value gets no bar. */
    private static void addSeries(CategoryChart chart, String name, Color color, List<String> categories,
                                  ToDoubleFunction<Scenario> value) {
        List<Double> ys = new ArrayList<>();
        boolean any = false;
        for (Scenario s : Scenario.values()) {
            double v = value.applyAsDouble(s);
            any |= !Double.isNaN(v);
            ys.add(Double.isNaN(v) ? null : v);
        }
        if (any) {
            chart.addSeries(name, categories, ys).setFillColor(color);
        }
    }

    /** Log axes need explicit bounds: bars would start at 0. Decades around the data. */
    private static void logBounds(CategoryChart chart) {
        double min = Double.MAX_VALUE;
        double max = 0;
        for (var series : chart.getSeriesMap().values()) {
            for (Number n : series.getYData()) {
                if (n != null) {
                    min = Math.min(min, n.doubleValue());
                    max = Math.max(max, n.doubleValue());
                }
            }
        }
        chart.getStyler().setYAxisMin(Math.pow(10, Math.floor(Math.log10(min))));
        chart.getStyler().setYAxisMax(Math.pow(10, Math.ceil(Math.log10(max))));
    }

    private static CategoryChart chart(String title, String yTitle) {
        CategoryChart c = new CategoryChartBuilder().width(1500).height(560).title(title).yAxisTitle(yTitle).build();
        c.getStyler().setYAxisLogarithmic(true);
        c.getStyler().setLegendPosition(Styler.LegendPosition.OutsideE);
        c.getStyler().setChartTitleFont(new Font(Font.SANS_SERIF, Font.BOLD, 16));
        c.getStyler().setAxisTickLabelsFont(new Font(Font.SANS_SERIF, Font.PLAIN, 13));
        c.getStyler().setLegendFont(new Font(Font.SANS_SERIF, Font.PLAIN, 13));
        c.getStyler().setChartBackgroundColor(Color.WHITE);
        c.getStyler().setPlotGridVerticalLinesVisible(false);
        c.getStyler().setAvailableSpaceFill(0.85);
        c.getStyler().setYAxisDecimalPattern("#,##0.###");
        return c;
    }

    private static String label(Scenario s) {
        return switch (s) {
            case SINGLE -> "single actor";
            case CHAIN4 -> "chain of 4 actors";
            case SCATTER4 -> "scatter-gather to 4";
            case ARGS8 -> "method of 8 arguments";
            case TENSOR_4K -> "tensor 4 KiB";
            case TENSOR_1M -> "tensor 1 MiB";
            case TENSOR_64M -> "tensor 64 MiB";
        };
    }

    private static String shortLabel(Scenario s) {
        return switch (s) {
            case SINGLE -> "single actor";
            case CHAIN4 -> "chain of 4";
            case SCATTER4 -> "scatter-gather 4";
            case ARGS8 -> "8 arguments";
            case TENSOR_4K -> "tensor 4 KiB";
            case TENSOR_1M -> "tensor 1 MiB";
            case TENSOR_64M -> "tensor 64 MiB";
        };
    }

    private String str(String key) {
        JsonElement e = first.get(key);
        return e == null ? "?" : e.getAsString();
    }

    private List<String> jvmArgs() {
        List<String> args = new ArrayList<>();
        JsonElement e = first.get("jvmArgs");
        if (e != null) {
            for (JsonElement a : e.getAsJsonArray()) {
                args.add(a.getAsString());
            }
        }
        return args;
    }

    private static String cpuModel() {
        for (String line : read("/proc/cpuinfo").split("\n")) {
            if (line.startsWith("model name")) {
                return line.substring(line.indexOf(':') + 1).strip();
            }
        }
        return "unknown CPU";
    }

    private static String memory() {
        for (String line : read("/proc/meminfo").split("\n")) {
            if (line.startsWith("MemTotal:")) {
                long kib = Long.parseLong(line.replaceAll("[^0-9]", ""));
                return String.format(Locale.ROOT, "%.1f GiB", kib / 1024.0 / 1024.0);
            }
        }
        return "unknown";
    }

    private static String loadAverage() {
        String[] f = read("/proc/loadavg").strip().split(" ");
        return f.length >= 3 ? f[0] + ", " + f[1] + ", " + f[2] : "unknown";
    }

    private static String read(String file) {
        try {
            return Files.readString(java.nio.file.Path.of(file));
        } catch (IOException e) {
            return "";
        }
    }

    /** Microseconds, about three significant digits. */
    static String us(double v) {
        if (Double.isNaN(v)) {
            return "—";
        }
        if (v >= 1000) {
            return String.format(Locale.ROOT, "%,.0f", v);
        }
        if (v >= 100) {
            return String.format(Locale.ROOT, "%.0f", v);
        }
        if (v >= 10) {
            return String.format(Locale.ROOT, "%.1f", v);
        }
        if (v >= 1) {
            return String.format(Locale.ROOT, "%.2f", v);
        }
        return String.format(Locale.ROOT, "%.3f", v);
    }

    private static String count(double v) {
        return Double.isNaN(v) ? "—" : String.format(Locale.ROOT, "%,.0f", v);
    }

    private static String bytes(double v) {
        return Double.isNaN(v) ? "—" : String.format(Locale.ROOT, "%,.0f", v);
    }

    private static String ratio(double v) {
        if (Double.isNaN(v) || Double.isInfinite(v)) {
            return "—";
        }
        return v >= 100 ? String.format(Locale.ROOT, "%,.0fx", v)
                : v >= 10 ? String.format(Locale.ROOT, "%.1fx", v)
                : v >= 0.1 ? String.format(Locale.ROOT, "%.2fx", v)
                : String.format(Locale.ROOT, "%.4fx", v);
    }

    /** Gigabytes (10^9 bytes) per second, for {@code bytes} moved in {@code micros}. */
    private static String gbps(long bytes, double micros) {
        if (Double.isNaN(micros)) {
            return "—";
        }
        double v = bytes / (micros * 1e-6) / 1e9;
        return v >= 100 ? String.format(Locale.ROOT, "%,.0f", v) : String.format(Locale.ROOT, "%.1f", v);
    }

    /** Gigabytes (10^9 bytes) per second. */
    private static String gbps(double bytesPerSecond) {
        double v = bytesPerSecond / 1e9;
        return v >= 100 ? String.format(Locale.ROOT, "%,.0f", v)
                : v >= 10 ? String.format(Locale.ROOT, "%.1f", v) : String.format(Locale.ROOT, "%.2f", v);
    }

    /** Megabytes (10^6 bytes) per second. */
    private static String mbps(double bytesPerSecond) {
        double v = bytesPerSecond / 1e6;
        return v >= 100 ? String.format(Locale.ROOT, "%,.0f", v) : String.format(Locale.ROOT, "%.1f", v);
    }

    private static String percent(double v) {
        return Double.isNaN(v) ? "—" : String.format(Locale.ROOT, "%.0f %%", 100 * v);
    }

    /** A power-of-two size as KiB or MiB. */
    private static String size(long bytes) {
        return bytes >= 1 << 20 ? (bytes >> 20) + " MiB" : (bytes >> 10) + " KiB";
    }

    private static String met(double measured, boolean yes) {
        return Double.isNaN(measured) ? "not run" : yes ? "yes" : "**no**";
    }
}
