package dev.kiln.bench;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;

import javax.xml.parsers.DocumentBuilderFactory;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Writes {@code report.md} of a {@code gpu/verify} run from what its steps left in the run's folder: the steps' table
 * ({@code steps.tsv}), {@code environment.txt}, the JUnit XML reports ({@code junit/}), each benchmark step's JMH JSON
 * ({@code <step>.json}) and log ({@code <step>.log}). Every figure is set next to its baseline of the same run, with
 * the ratio and, where the issue sets one, the target. A step that failed or timed out is reported with its log's
 * tail; a benchmark whose trial failed, with JMH's message; results of a step killed before JMH wrote its JSON are read
 * from its log. In a simulated run ({@code --mode simulated}) targets are not judged: the figures measure the
 * simulator on host memory.
 *
 * <pre>
 * java -cp '.gpu-lib/*' dev.kiln.bench.GpuReport --out DIR --mode gpu|simulated --started EPOCH_SECONDS --command TEXT
 * </pre>
 */
public final class GpuReport {

    private static final long MIB = 1 << 20;
    private static final String CHANNEL = "dev.kiln.bench.GpuChannelBenchmark.transfer";
    private static final String IPC = "dev.kiln.bench.GpuIpcBenchmark.transfer";
    private static final String NCCL = "dev.kiln.bench.GpuNcclBenchmark.collective";
    private static final String PIPELINE = "dev.kiln.bench.GpuPipelineBenchmark.execution";
    private static final String THROUGHPUT = "dev.kiln.bench.ThroughputBenchmark.";
    private static final Pattern PARAMS = Pattern.compile("# Parameters: \\((.*)\\)");
    private static final Pattern RESULT = Pattern.compile("^\\s+([0-9.,]+)(?: ±\\(99\\.9%\\) ([0-9.,]+))? ops/s");

    private final Path out;
    private final boolean simulated;
    private final List<Result> results = new ArrayList<>();
    private final List<String> failures = new ArrayList<>();
    private final List<String[]> verdicts = new ArrayList<>();
    private final StringBuilder md = new StringBuilder();

    /** One trial's score in operations per second (every benchmark here is in {@code Mode.Throughput}, ops/s). */
    private record Result(String benchmark, Map<String, String> params, double score, double error) {
        String param(String name) {
            return params.getOrDefault(name, "");
        }
    }

    private GpuReport(Path out, boolean simulated) {
        this.out = out;
        this.simulated = simulated;
    }

    /**
     * @param args {@code --out DIR --mode gpu|simulated --started EPOCH_SECONDS --command TEXT}
     * @throws IOException if the report cannot be written
     */
    public static void main(String[] args) throws IOException {
        Map<String, String> options = new TreeMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            options.put(args[i], args[i + 1]);
        }
        Path out = Path.of(options.getOrDefault("--out", "."));
        GpuReport report = new GpuReport(out, "simulated".equals(options.get("--mode")));
        long started = Long.parseLong(options.getOrDefault("--started", String.valueOf(Instant.now().getEpochSecond())));
        String text = report.write(started, options.getOrDefault("--command", "gpu/verify"));
        Files.writeString(out.resolve("report.md"), text, StandardCharsets.UTF_8);
        System.out.println("gpu/verify: report written to " + out.resolve("report.md"));
    }

    /** @return the report: a header with the verdicts, then every section */
    private String write(long started, String command) throws IOException {
        List<String[]> steps = readSteps();
        for (String[] step : steps) {
            if (step[0].startsWith("gpu-") || step[0].startsWith("cpu-")) {
                readResults(step[0]);
            }
        }
        Map<String, String> env = readEnvironment();
        tests();
        sameDevice();
        staged();
        ipc();
        nccl();
        pipeline();
        cpu(env);
        failures();
        stepsTable(steps);
        environment(env);

        long wall = Instant.now().getEpochSecond() - started;
        StringBuilder head = new StringBuilder("# Kiln on a GPU: `gpu/verify` report\n\n");
        if (simulated) {
            head.append("> **SIMULATED RUN: no GPU was used.** The GPU benchmarks ran on `SimulatedDeviceOps` (simulated"
                    + " GPUs on host memory, `-Dkiln.bench.gpu=simulated`): their figures measure the simulator, not a GPU,"
                    + " and no target is judged. The GPU tests are skipped without CUDA (their JUnit assumptions), as listed"
                    + " below. This run checks the script, the benchmarks' logic and this report.\n\n");
        }
        head.append("- Command: `").append(command).append("`\n");
        head.append("- Started ").append(Instant.ofEpochSecond(started).truncatedTo(ChronoUnit.SECONDS))
                .append(", wall time ").append(minutes(wall)).append(" (budget: under 8 min)\n");
        head.append("- Machine: ").append(env.getOrDefault("gpu", simulated ? "no GPU" : "GPU unknown (no nvidia-smi)"))
                .append("; ").append(env.getOrDefault("cpus", "?")).append('\n');
        head.append("- Java: ").append(env.getOrDefault("java", "?")).append('\n');
        String kit = read(out.resolve("kit.txt"));
        if (!kit.isBlank()) {
            head.append("- Kit: ").append(kit.strip().replace("\n", "; ")).append('\n');
        }
        head.append("\n## Verdict\n\n| check | target | measured | verdict |\n| --- | --- | --- | --- |\n");
        for (String[] v : verdicts) {
            head.append("| ").append(String.join(" | ", v)).append(" |\n");
        }
        return head.append('\n').append(md).toString();
    }

    // ------------------------------------------------------------------ inputs

    /** @return per step: name, status, seconds, budget, log file */
    private List<String[]> readSteps() throws IOException {
        List<String[]> steps = new ArrayList<>();
        Path file = out.resolve("steps.tsv");
        if (Files.exists(file)) {
            for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                String[] f = line.split("\t", -1);
                if (f.length >= 5) {
                    steps.add(f);
                }
            }
        }
        return steps;
    }

    private Map<String, String> readEnvironment() throws IOException {
        Map<String, String> env = new LinkedHashMap<>();
        for (String line : read(out.resolve("environment.txt")).split("\n")) {
            int colon = line.indexOf(": ");
            if (colon > 0 && !line.startsWith(" ")) {
                env.putIfAbsent(line.substring(0, colon), line.substring(colon + 2));
            }
        }
        return env;
    }

    /** Reads a benchmark step's JSON, or its log when JMH was stopped before writing it; collects its failures. */
    private void readResults(String step) throws IOException {
        Path json = out.resolve(step + ".json");
        String log = read(out.resolve(step + ".log"));
        boolean fromJson = false;
        if (Files.exists(json) && Files.size(json) > 0) {
            try {
                for (JsonElement e : JsonParser.parseString(Files.readString(json)).getAsJsonArray()) {
                    JsonObject o = e.getAsJsonObject();
                    Map<String, String> params = new TreeMap<>();
                    if (o.has("params")) {
                        o.getAsJsonObject("params").entrySet().forEach(p -> params.put(p.getKey(), p.getValue().getAsString()));
                    }
                    JsonObject m = o.getAsJsonObject("primaryMetric");
                    double error = m.get("scoreError").isJsonPrimitive() && m.get("scoreError").getAsJsonPrimitive().isNumber()
                            ? m.get("scoreError").getAsDouble() : Double.NaN;
                    results.add(new Result(o.get("benchmark").getAsString(), params, m.get("score").getAsDouble(), error));
                }
                fromJson = true;
            } catch (RuntimeException e) {
                failures.add("`" + step + ".json` cannot be read (" + e + "); results taken from its log");
            }
        }
        String benchmark = null;
        Map<String, String> params = new TreeMap<>();
        String[] lines = log.split("\n");
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i];
            Matcher p = PARAMS.matcher(line);
            if (line.startsWith("# Benchmark: ")) {
                benchmark = line.substring("# Benchmark: ".length()).strip();
                params = new TreeMap<>();
            } else if (p.matches()) {
                params = new TreeMap<>();
                for (String kv : p.group(1).split(", ")) {
                    String[] pair = kv.split(" = ", 2);
                    if (pair.length == 2) {
                        params.put(pair[0].strip(), pair[1].strip());
                    }
                }
            } else if (line.contains("GpuIpcReader: ") && !line.contains(" tensors of ")) {
                failures.add("`" + step + "`: the reader JVM of " + params + " said: "
                        + line.substring(line.indexOf("GpuIpcReader: ") + "GpuIpcReader: ".length()));
            } else if (line.contains("<failure>") || line.contains("<forked VM failed")) {
                String why = line.contains("<failure>") ? nextText(lines, i + 1) : line.strip();
                failures.add("`" + step + "`: " + shortName(benchmark) + " " + params + ": " + why);
            } else if (!fromJson && line.startsWith("Result \"") && i + 1 < lines.length) {
                Matcher r = RESULT.matcher(lines[i + 1]);
                if (r.find() && benchmark != null) {
                    results.add(new Result(benchmark, params, number(r.group(1)),
                            r.group(2) == null ? Double.NaN : number(r.group(2))));
                }
            }
        }
    }

    private static double number(String s) {
        return Double.parseDouble(s.replace(",", ""));
    }

    /** @return the first non-blank line from {@code from}, trimmed to one line of text */
    private static String nextText(String[] lines, int from) {
        for (int i = from; i < lines.length && i < from + 5; i++) {
            if (!lines[i].isBlank()) {
                return lines[i].strip();
            }
        }
        return "(no message)";
    }

    /** @return the file as UTF-8 (JMH's ± included), bytes that are not replaced; empty if it does not exist */
    private static String read(Path file) throws IOException {
        return Files.exists(file) ? new String(Files.readAllBytes(file), StandardCharsets.UTF_8) : "";
    }

    private static String tail(Path file, int lines) throws IOException {
        String[] all = read(file).split("\n");
        StringBuilder s = new StringBuilder();
        for (int i = Math.max(0, all.length - lines); i < all.length; i++) {
            s.append(all[i]).append('\n');
        }
        return s.toString();
    }

    // ------------------------------------------------------------------ sections

    private void tests() throws IOException {
        md.append("## GPU tests (JUnit console launcher, tag `gpu`)\n\n");
        Path dir = out.resolve("junit");
        List<Path> xml = new ArrayList<>();
        if (Files.isDirectory(dir)) {
            try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, "TEST-*.xml")) {
                files.forEach(xml::add);
            }
        }
        if (xml.isEmpty()) {
            md.append("No JUnit XML report: the launcher did not finish. Tail of `tests.txt`:\n\n```\n")
                    .append(tail(out.resolve("tests.txt"), 30)).append("```\n\n");
            verdicts.add(new String[] {"GPU tests", "all pass", "no report", "**FAIL**"});
            return;
        }
        Map<String, int[]> perClass = new TreeMap<>();
        Map<String, List<String>> skippedWhy = new TreeMap<>();
        List<String> failed = new ArrayList<>();
        int passed = 0;
        int failedCount = 0;
        int skipped = 0;
        try {
            DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
            for (Path file : xml) {
                Document doc = factory.newDocumentBuilder().parse(file.toFile());
                NodeList cases = doc.getElementsByTagName("testcase");
                for (int i = 0; i < cases.getLength(); i++) {
                    Element c = (Element) cases.item(i);
                    String cls = c.getAttribute("classname");
                    String name = cls.substring(cls.lastIndexOf('.') + 1) + "." + c.getAttribute("name");
                    int[] counts = perClass.computeIfAbsent(cls.substring(cls.lastIndexOf('.') + 1), k -> new int[3]);
                    Element problem = child(c, "failure", "error");
                    Element skip = child(c, "skipped");
                    if (problem != null) {
                        failedCount++;
                        counts[1]++;
                        failed.add("`" + name + "`: " + firstLine(problem.getAttribute("message").isEmpty()
                                ? problem.getTextContent() : problem.getAttribute("message")));
                    } else if (skip != null) {
                        skipped++;
                        counts[2]++;
                        String why = firstLine(skip.getAttribute("message").isEmpty() ? skip.getTextContent()
                                : skip.getAttribute("message"));
                        skippedWhy.computeIfAbsent(why, k -> new ArrayList<>()).add(name);
                    } else {
                        passed++;
                        counts[0]++;
                    }
                }
            }
        } catch (Exception e) {
            md.append("The JUnit XML report cannot be read: ").append(e).append("\n\n");
        }
        md.append(String.format(Locale.ROOT, "%d tests: **%d passed, %d failed, %d skipped** (skipped: a JUnit"
                + " assumption was not met, e.g. no GPU, no NVRTC, or a second GPU). Console output: `tests.txt`; XML:"
                + " `junit/`.%n%n", passed + failedCount + skipped, passed, failedCount, skipped));
        md.append("| class | passed | failed | skipped |\n| --- | ---: | ---: | ---: |\n");
        perClass.forEach((cls, n) -> md.append("| ").append(cls).append(" | ").append(n[0]).append(" | ").append(n[1])
                .append(" | ").append(n[2]).append(" |\n"));
        if (!failed.isEmpty()) {
            md.append("\nFailed:\n\n");
            failed.forEach(f -> md.append("- ").append(f).append('\n'));
        }
        if (!skippedWhy.isEmpty()) {
            md.append("\nSkipped, by reason:\n\n");
            skippedWhy.forEach((why, names) -> md.append("- ").append(names.size()).append(" test(s): ").append(why)
                    .append(" (").append(String.join(", ", names.stream().map(n -> "`" + n + "`").toList()))
                    .append(")\n"));
        }
        md.append('\n');
        String measured = passed + " passed, " + failedCount + " failed, " + skipped + " skipped";
        String verdict = failedCount > 0 ? "**FAIL**" : simulated ? "n/a (simulated: skipped without a GPU)"
                : passed == 0 ? "**FAIL** (nothing ran)" : "PASS";
        verdicts.add(new String[] {"GPU tests", "all pass", measured, verdict});
    }

    private static Element child(Element parent, String... names) {
        for (Node n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element e && List.of(names).contains(e.getTagName())) {
                return e;
            }
        }
        return null;
    }

    /** @return the first line of an XML report's message or stack trace, without the assumption's exception class */
    private static String firstLine(String s) {
        String t = s.strip().replaceFirst("^org\\.opentest4j\\.TestAbortedException: ", "");
        int nl = t.indexOf('\n');
        t = nl < 0 ? t : t.substring(0, nl);
        return t.length() > 400 ? t.substring(0, 400) + "..." : t;
    }

    private void sameDevice() {
        md.append("## Same device: channel vs `cudaMemcpyAsync` D2D (`GpuChannelBenchmark`)\n\n"
                + "One operation moves one tensor and waits for it on the GPU; GB/s = tensor bytes per second (10^9). The"
                + " channel copies device to device once, plus its events.\n\n"
                + "| tensor | `cudaMemcpyAsync` D2D (GB/s) | same-device channel (GB/s) | channel / D2D | target |\n"
                + "| ---: | ---: | ---: | ---: | --- |\n");
        for (String bytes : List.of("1048576", "16777216", "67108864")) {
            Result base = find(CHANNEL, bytes, "way", "MEMCPY_D2D");
            Result kiln = find(CHANNEL, bytes, "way", "SAME_DEVICE");
            boolean judged = bytes.equals("67108864");
            String ratio = ratio(kiln, base);
            md.append("| ").append(size(bytes)).append(" | ").append(gbs(base, bytes)).append(" | ").append(gbs(kiln, bytes))
                    .append(" | ").append(ratio).append(" | ").append(judged ? ">= 95 %" : "").append(" |\n");
            if (judged) {
                verdicts.add(new String[] {"same-device channel vs `cudaMemcpyAsync` D2D, 64 MiB", ">= 95 %", ratio,
                        judge(kiln, base, 0.95)});
            }
        }
        md.append('\n');
    }

    private void staged() {
        md.append("## Staged: channel vs pinned `cudaMemcpyAsync` D2H + H2D (`GpuChannelBenchmark`)\n\n"
                + "The staged path copies device to host (into its pinned shared-memory slot, waited for), then host to"
                + " device (into the reader's buffer, waited for); the baseline is the same pair of copies through a"
                + " pinned host buffer, each waited for. GB/s = tensor bytes delivered per second (each crosses the host"
                + " link twice).\n\n"
                + "| tensor | pinned D2H + H2D (GB/s) | staged channel (GB/s) | staged / pinned | target |\n"
                + "| ---: | ---: | ---: | ---: | --- |\n");
        for (String bytes : List.of("1048576", "16777216", "67108864")) {
            Result base = find(CHANNEL, bytes, "way", "MEMCPY_D2H_H2D");
            Result kiln = find(CHANNEL, bytes, "way", "STAGED");
            String ratio = ratio(kiln, base);
            md.append("| ").append(size(bytes)).append(" | ").append(gbs(base, bytes)).append(" | ").append(gbs(kiln, bytes))
                    .append(" | ").append(ratio).append(" | >= 80 % |\n");
            verdicts.add(new String[] {"staged channel vs pinned D2H + H2D, " + size(bytes), ">= 80 %", ratio,
                    judge(kiln, base, 0.80)});
        }
        md.append('\n');
    }

    private void ipc() {
        md.append("## CUDA IPC between two JVMs (`GpuIpcBenchmark`)\n\n"
                + "Writer in the benchmark JVM, reader in a second JVM on the same GPU, 2 tensors in flight; the baseline"
                + " is `cudaMemcpyAsync` D2D in one process (copy, then synchronize). No target is set.\n\n"
                + "| tensor | D2D, one process (GB/s) | CUDA IPC, two JVMs (GB/s) | IPC / D2D |\n| ---: | ---: | ---: | ---: |\n");
        for (String bytes : List.of("16777216", "67108864")) {
            Result base = find(IPC, bytes, "way", "MEMCPY_D2D");
            Result kiln = find(IPC, bytes, "way", "CUDA_IPC");
            md.append("| ").append(size(bytes)).append(" | ").append(gbs(base, bytes)).append(" | ").append(gbs(kiln, bytes))
                    .append(" | ").append(ratio(kiln, base)).append(" |\n");
        }
        md.append('\n');
    }

    private void nccl() {
        md.append("## One-rank NCCL: `NcclCommunicator` vs raw `Nccl` calls (`GpuNcclBenchmark`)\n\n"
                + "One operation: an all-reduce (sum of floats) or a grouped send + receive to the rank itself, then the"
                + " stream is synchronized. Raw: a blocking communicator and the bare calls; Kiln: its non-blocking"
                + " communicator and wrapper. Overhead per operation = 1 / Kiln - 1 / raw.\n\n"
                + "| operation | bytes | raw NCCL (ops/s) | Kiln (ops/s) | Kiln / raw | Kiln's overhead per op |\n"
                + "| --- | ---: | ---: | ---: | ---: | ---: |\n");
        for (String op : List.of("ALL_REDUCE", "SEND_RECV")) {
            for (String bytes : List.of("1048576", "67108864")) {
                Result raw = find(NCCL, Map.of("bytes", bytes, "op", op, "way", "RAW"));
                Result kiln = find(NCCL, Map.of("bytes", bytes, "op", op, "way", "KILN"));
                String overhead = raw == null || kiln == null ? "-"
                        : String.format(Locale.ROOT, "%.1f us", (1 / kiln.score() - 1 / raw.score()) * 1e6);
                md.append("| ").append(op.toLowerCase(Locale.ROOT).replace('_', ' ')).append(" | ").append(size(bytes))
                        .append(" | ").append(ops(raw, simulated ? "not run (simulated: no libnccl)" : "missing"))
                        .append(" | ").append(ops(kiln, "missing")).append(" | ").append(ratio(kiln, raw)).append(" | ")
                        .append(overhead).append(" |\n");
            }
        }
        md.append('\n');
    }

    private void pipeline() {
        Result floor = find(PIPELINE, Map.of("way", "FLOOR"));
        Result kiln = find(PIPELINE, Map.of("way", "KILN"));
        md.append("## 2-stage GPU pipeline (`GpuPipelineBenchmark`)\n\n"
                + "One execution: 4,096 floats from the host, `AFFINE` then `SQUARE` (GpuPipelineDemo's kernels) on GPU 0,"
                + " the result back to the host. Kiln: a compiled graph of two GPU actors joined by a same-device channel,"
                + " 8 executions in flight. Floor: the same copies and kernels back to back on one stream, one at a time.\n\n"
                + "| way | executions/s | vs floor |\n| --- | ---: | ---: |\n")
                .append("| floor: two kernels on one stream | ").append(ops(floor, "missing")).append(" | 1.00x |\n")
                .append("| Kiln compiled graph, 2 GPU actors | ").append(ops(kiln, "missing")).append(" | ")
                .append(kiln == null || floor == null ? "-" : String.format(Locale.ROOT, "%.2fx", kiln.score() / floor.score()))
                .append(" |\n\n");
    }

    private void cpu(Map<String, String> env) {
        List<Result> cpu = results.stream().filter(r -> r.benchmark().startsWith(THROUGHPUT)).toList();
        md.append("## CPU throughput on this machine's cores (`ThroughputBenchmark`)\n\n"
                + "Executions per second with `window` executions in flight (see docs/benchmarks.md, Paths); the paths that"
                + " need no Pekko. ").append(env.getOrDefault("cpus", "")).append(".\n\n");
        if (cpu.isEmpty()) {
            md.append("No results.\n\n");
            return;
        }
        md.append("| scenario | window | Kiln compiled | Kiln dynamic | `ExecutorService` | Disruptor | compiled / Disruptor |\n"
                + "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        Map<String, Map<String, Result>> rows = new LinkedHashMap<>();
        for (Result r : cpu) {
            String key = r.param("scenario") + "\t" + r.param("window");
            rows.computeIfAbsent(key, k -> new TreeMap<>()).put(r.benchmark().substring(THROUGHPUT.length()), r);
        }
        rows.forEach((key, byPath) -> {
            String[] k = key.split("\t");
            md.append("| ").append(k[0]).append(" | ").append(k[1]);
            for (String path : List.of("compiled", "dynamic", "executor", "disruptor")) {
                md.append(" | ").append(ops(byPath.get(path), "-"));
            }
            md.append(" | ").append(ratio(byPath.get("compiled"), byPath.get("disruptor"))).append(" |\n");
        });
        md.append('\n');
    }

    private void failures() {
        long gpu = results.stream().filter(r -> r.benchmark().startsWith("dev.kiln.bench.Gpu")).count();
        long cpu = results.size() - gpu;
        verdicts.add(new String[] {"benchmark trials", "each gives a result", gpu + " GPU and " + cpu + " CPU results, "
                + failures.size() + " failures", failures.isEmpty() && gpu > 0 && cpu > 0 ? "PASS" : "**FAIL**"});
        md.append("## Benchmark failures\n\n");
        if (failures.isEmpty()) {
            md.append("None: every trial that ran gave a result.\n\n");
            return;
        }
        failures.forEach(f -> md.append("- ").append(f).append('\n'));
        md.append('\n');
    }

    private void stepsTable(List<String[]> steps) throws IOException {
        md.append("## Steps\n\n| step | status | time (s) | budget (s) | output |\n| --- | --- | ---: | ---: | --- |\n");
        int ok = 0;
        for (String[] s : steps) {
            md.append("| ").append(s[0]).append(" | ").append(s[1].equals("ok") ? "ok" : "**" + s[1] + "**").append(" | ")
                    .append(s[2]).append(" | ").append(s[3]).append(" | `").append(s[4]).append("` |\n");
            ok += s[1].equals("ok") ? 1 : 0;
        }
        md.append('\n');
        for (String[] s : steps) {
            if (!s[1].equals("ok") && !s[4].isEmpty()) {
                md.append("Tail of `").append(s[4]).append("` (").append(s[0]).append(", ").append(s[1]).append("):\n\n```\n")
                        .append(tail(out.resolve(s[4]), 25)).append("```\n\n");
            }
        }
        verdicts.add(new String[] {"steps", "all complete in time", ok + " of " + steps.size() + " ok",
                ok == steps.size() && !steps.isEmpty() ? "PASS" : "**FAIL**"});
    }

    private void environment(Map<String, String> env) throws IOException {
        md.append("## Environment\n\nWhat Kiln found (`dev.kiln.bench.GpuEnvironment`):\n\n| item | found |\n| --- | --- |\n");
        for (String key : List.of("libcudart", "libcuda", "libnvrtc", "libnccl", "CUDA", "CUDA driver API", "NVRTC", "NCCL",
                "kiln.nccl.path")) {
            String found = env.getOrDefault(key, "?");
            if (found.length() > 200) {
                found = found.substring(0, 200) + "... (see below)";
            }
            md.append("| ").append(key).append(" | ").append(found.replace("|", "\\|")).append(" |\n");
        }
        md.append("\n`environment.txt`:\n\n```\n").append(read(out.resolve("environment.txt")).strip()).append("\n```\n");
    }

    // ------------------------------------------------------------------ helpers

    private Result find(String benchmark, String bytes, String param, String value) {
        return find(benchmark, Map.of("bytes", bytes, param, value));
    }

    private Result find(String benchmark, Map<String, String> params) {
        Predicate<Result> match = r -> r.benchmark().equals(benchmark)
                && params.entrySet().stream().allMatch(p -> p.getValue().equals(r.param(p.getKey())));
        return results.stream().filter(match).findFirst().orElse(null);
    }

    private String judge(Result kiln, Result base, double target) {
        if (kiln == null || base == null) {
            return simulated ? "n/a (simulated)" : "**FAIL** (not measured)";
        }
        if (simulated) {
            return "n/a (simulated)";
        }
        return kiln.score() / base.score() >= target ? "PASS" : "**FAIL**";
    }

    private static String ratio(Result kiln, Result base) {
        return kiln == null || base == null ? "-" : String.format(Locale.ROOT, "%.1f %%", 100 * kiln.score() / base.score());
    }

    private static String gbs(Result r, String bytes) {
        if (r == null) {
            return "missing";
        }
        double b = Double.parseDouble(bytes);
        String value = String.format(Locale.ROOT, "%.2f", r.score() * b / 1e9);
        return Double.isNaN(r.error()) ? value : value + String.format(Locale.ROOT, " ± %.2f", r.error() * b / 1e9);
    }

    private static String ops(Result r, String missing) {
        if (r == null) {
            return missing;
        }
        String value = String.format(Locale.ROOT, "%,.0f", r.score());
        return Double.isNaN(r.error()) ? value : value + String.format(Locale.ROOT, " ± %,.0f", r.error());
    }

    private static String size(String bytes) {
        long b = Long.parseLong(bytes);
        return b % MIB == 0 ? b / MIB + " MiB" : b + " B";
    }

    private static String shortName(String benchmark) {
        return benchmark == null ? "?" : benchmark.replace("dev.kiln.bench.", "");
    }

    private static String minutes(long seconds) {
        return seconds / 60 + " min " + seconds % 60 + " s";
    }
}
