package dev.kiln.examples;

import dev.kiln.CompiledGraph;
import dev.kiln.GraphFuture;
import dev.kiln.GraphStatistics;
import dev.kiln.GraphTrace;
import dev.kiln.Kiln;
import dev.kiln.LatencyHistogram;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.stream.LongStream;

/**
 * The demo the README's main command runs ({@code mvn -q -DskipTests -Pdemo verify}): a
 * 4-stage pipeline over float vectors, one actor per stage (normalize, scale + bias, 5-tap
 * smoothing, ReLU + softmax), run as a compiled graph and through the dynamic per-call path
 * ({@code kiln.call} chained stage by stage) on the same actors.
 *
 * <p>It prints the compiled plan, checks that every compiled and every dynamic result equals
 * a plain sequential computation bit for bit, and prints median and p99 latency (one
 * execution at a time) and throughput ({@value #WINDOW} executions in flight) of both paths,
 * a line on why the compiled graph pipelines, and, from the graph's statistics over the measured
 * runs, each of its threads' time in the actors' methods per execution: a pipeline passes no
 * more executions per second than its busiest thread takes.
 *
 * <p>Arguments: {@code --spin} compiles with {@link IdleMode#SPIN} instead of the default
 * {@link IdleMode#BACKOFF} (only sensible with a spare core per actor plus one for the
 * driver); {@code --executions N} sets the number of measured executions per run (default
 * {@value #DEFAULT_EXECUTIONS}); {@code --warmup-ms MS} how long each path runs before it is measured (default
 * {@value #DEFAULT_WARMUP_MS}: the JIT compiles the stage methods and Kiln's loops while both cores are busy, and
 * a path measured cold shows the compiler's work, not its own); {@code --trace FILE} writes a Perfetto trace
 * (Chrome trace JSON, one track per actor) of the measured one-at-a-time compiled executions (at most
 * {@value #TRACED}) to {@code FILE}. Through
 * Maven: {@code mvn -q -DskipTests -Pdemo verify -Ddemo.args=--spin}.
 * Exits with status 1 if a result differs.
 */
public final class PipelineDemo {

    /** Floats per vector. */
    static final int SIZE = 4096;
    /** Executions in flight in the throughput runs; also the graph's {@code maxInflight}. */
    static final int WINDOW = 8;
    /** Distinct input vectors; execution {@code i} uses input {@code i % INPUTS}. */
    static final int INPUTS = 64;
    private static final int DEFAULT_EXECUTIONS = 2_000;
    private static final long DEFAULT_WARMUP_MS = 2_000;
    /** The most executions {@code --trace} records. */
    private static final int TRACED = 10_000;

    private PipelineDemo() {
    }

    /**
     * Runs the demo.
     *
     * @param args {@code [--spin] [--executions N] [--warmup-ms MS] [--trace FILE]}
     */
    public static void main(String[] args) {
        IdleMode idle = IdleMode.BACKOFF;
        int executions = DEFAULT_EXECUTIONS;
        long warmupMs = DEFAULT_WARMUP_MS;
        java.nio.file.Path trace = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--spin" -> idle = IdleMode.SPIN;
                case "--executions" -> executions = Integer.parseInt(args[++i]);
                case "--warmup-ms" -> warmupMs = Long.parseLong(args[++i]);
                case "--trace" -> trace = java.nio.file.Path.of(args[++i]);
                default -> {
                    System.err.println("usage: PipelineDemo [--spin] [--executions N] [--warmup-ms MS] [--trace FILE]; "
                            + "unknown argument " + args[i]);
                    System.exit(2);
                }
            }
        }
        if (!run(idle, executions, warmupMs, trace)) {
            System.exit(1);
        }
    }

    private static boolean run(IdleMode idle, int executions, long warmupMs, java.nio.file.Path traceFile) {
        float[][] inputs = inputs(INPUTS, SIZE, 42);
        float[][] expected = new float[INPUTS][];
        for (int k = 0; k < INPUTS; k++) {
            expected[k] = sequential(inputs[k]);
        }
        int warmup = Math.max(executions / 2, 200);
        int cpus = Runtime.getRuntime().availableProcessors();
        System.out.printf(Locale.ROOT, "Kiln pipeline demo: 4 actors, %d floats per vector, %d executions per run "
                + "(after at least %d warm-up and %d ms), idle mode %s, %d CPUs%n%n", SIZE, executions, warmup,
                warmupMs, idle, cpus);
        Normalize normalize = new Normalize();
        Affine affine = new Affine(SIZE);
        Smooth smooth = new Smooth();
        Softmax softmax = new Softmax();
        Path plain = v -> softmax.apply(smooth.apply(affine.apply(normalize.apply(v))));
        Tally sequentialWarm = warmUp(plain, v -> CompletableFuture.completedFuture(plain.apply(v)), inputs, warmup,
                warmupMs, expected);
        Stats compiledRun;
        Stats dynamicRun;
        long threads;
        String busiest;
        try (Kiln kiln = Kiln.local()) {
            Stages stages = Stages.create(kiln, SIZE);
            CompileOptions options = CompileOptions.defaults().maxInflight(WINDOW).idle(idle);
            InputNode<float[]> in = Graph.input();
            try (CompiledGraph<float[], float[]> g = kiln.compile(in, stages.bind(in), options)) {
                System.out.println(g.plan());
                threads = g.plan().schedules().stream().filter(s -> !s.sharesThread()).count();
                Path compiled = v -> g.execute(v).get();
                Pipelined window = v -> g.execute(v);
                Tally warm = warmUp(compiled, window, inputs, warmup, warmupMs, expected);
                GraphStatistics warmed = g.statistics();
                GraphTrace trace = traceFile == null ? null : g.startTrace(Math.min(executions, TRACED));
                Latencies latencies = run(compiled, inputs, executions, expected);
                if (trace != null) {
                    try {
                        trace.writeTo(traceFile);
                    } catch (IOException e) {
                        throw new UncheckedIOException("cannot write the trace to " + traceFile
                                + ": give --trace a writable file", e);
                    }
                    System.out.printf(Locale.ROOT, "trace: %d executions written to %s (open it in "
                            + "https://ui.perfetto.dev)%n%n", trace.recorded(), traceFile);
                }
                compiledRun = new Stats(latencies, pipelined(window, inputs, executions, expected), warm);
                busiest = stageLoads((int) threads, warmed, g.statistics());
            }
            // The graph released the actors: the dynamic path runs the same methods on the same threads.
            Path dynamic = v -> stages.call(kiln, v).join();
            Pipelined dynamicWindow = v -> stages.call(kiln, v);
            Tally warm = warmUp(dynamic, dynamicWindow, inputs, warmup, warmupMs, expected);
            dynamicRun = new Stats(run(dynamic, inputs, executions, expected),
                    pipelined(dynamicWindow, inputs, executions, expected), warm);
        }
        // Measured last, when the JIT has long finished with the stage methods that every path shares.
        Latencies sequentialRun = run(plain, inputs, executions, expected);
        long wrong = sequentialWarm.mismatches() + sequentialRun.mismatches() + compiledRun.mismatches()
                + dynamicRun.mismatches();
        System.out.printf(Locale.ROOT, "check: %d compiled and %d dynamic results against the sequential "
                + "computation: %s%n%n", compiledRun.results(), dynamicRun.results(),
                wrong == 0 ? "all identical" : wrong + " DIFFER");
        Stats sequential = new Stats(sequentialRun,
                new Throughput(1e9 * executions / LongStream.of(sequentialRun.sortedNs()).sum(), 0), sequentialWarm);
        System.out.printf(Locale.ROOT, "%-30s %12s %12s %16s%n", "", "median (us)", "p99 (us)", "executions/s");
        row("sequential (1 thread, no actor)", sequential);
        row("compiled (" + idle + ")", compiledRun);
        row("dynamic (kiln.call chain)", dynamicRun);
        System.out.printf(Locale.ROOT, "%-30s %11.1fx %11.1fx %15.1fx%n", "compiled vs dynamic",
                dynamicRun.medianUs() / compiledRun.medianUs(), dynamicRun.p99Us() / compiledRun.p99Us(),
                compiledRun.perSecond() / dynamicRun.perSecond());
        System.out.printf(Locale.ROOT, "%nlatency: one execution at a time; throughput: %d in flight (sequential: "
                + "one thread, back to back).%nmedian overhead over the sequential computation: compiled %+.1f us, "
                + "dynamic %+.1f us per execution (4 hops).%n", WINDOW,
                compiledRun.medianUs() - sequential.medianUs(), dynamicRun.medianUs() - sequential.medianUs());
        System.out.printf(Locale.ROOT, "why: the plan put the 4 stages on %d threads%s and a channel per edge, so "
                + "up to %d executions move down the pipeline at once, a hop inside a thread is a write and a read, "
                + "a hop between threads wakes a thread only if it sleeps, and a thread with nothing to do takes a "
                + "turn at a heavy stage; kiln.call pays a mailbox, a future and a wake-up per call.%n%s%n", threads,
                threads < 4 ? " (\"threads:\" above)" : "", WINDOW, busiest);
        return wrong == 0;
    }

    /**
     * What the graph's statistics say each stage spent in its method per execution between two snapshots (the mean of
     * the sampled calls), and what that allows: a pipeline passes no more executions per second than its slowest stage
     * (one call at a time), nor than its threads can take when they share the stages' work out evenly (they take turns
     * at the heavy stages).
     */
    private static String stageLoads(int threads, GraphStatistics before, GraphStatistics after) {
        StringBuilder sb = new StringBuilder("time in methods per execution (statistics):");
        double total = 0;
        double slowest = 0;
        String slowestName = "";
        for (GraphStatistics.ActorStatistics a : after.actors()) {
            GraphStatistics.ActorStatistics earlier = before.actors().stream()
                    .filter(b -> b.actor().equals(a.actor())).findFirst().orElse(null);
            double us = 0;
            for (int m = 0; m < a.methods().size(); m++) {
                LatencyHistogram now = a.methods().get(m).latency();
                LatencyHistogram then = earlier == null ? null : earlier.methods().get(m).latency();
                long calls = now.count() - (then == null ? 0 : then.count());
                long nanos = now.totalNanos() - (then == null ? 0 : then.totalNanos());
                us += calls == 0 ? 0 : nanos / 1e3 / calls;
            }
            sb.append(String.format(Locale.ROOT, " %s %.1f us,", a.actor(), us));
            total += us;
            if (us > slowest) {
                slowest = us;
                slowestName = a.actor();
            }
        }
        if (sb.charAt(sb.length() - 1) == ',') {
            sb.setLength(sb.length() - 1);
        }
        double bound = Math.max(slowest, total / threads);
        return bound == 0 ? sb.append(" none timed").toString()
                : sb.append(String.format(Locale.ROOT, "; at most %,.0f executions/s (%s)", 1e6 / bound,
                        slowest >= total / threads ? "the slowest stage, " + slowestName
                                : String.format(Locale.ROOT, "%.1f us over %d threads", total, threads))).toString();
    }

    private static void row(String label, Stats stats) {
        System.out.printf(Locale.ROOT, "%-30s %12.1f %12.1f %16.0f%n", label, stats.medianUs(), stats.p99Us(),
                stats.perSecond());
    }

    /**
     * Warms a path up: {@code executions} one at a time, then {@code executions} pipelined, again and again until
     * {@code ms} have passed (at least once).
     *
     * @return the results it checked and those that differed from the sequential computation
     */
    private static Tally warmUp(Path one, Pipelined window, float[][] inputs, int executions, long ms,
                                float[][] expected) {
        long results = 0;
        long wrong = 0;
        long until = System.nanoTime() + ms * 1_000_000;
        do {
            wrong += run(one, inputs, executions, expected).mismatches()
                    + pipelined(window, inputs, executions, expected).mismatches();
            results += 2L * executions;
        } while (System.nanoTime() - until < 0);
        return new Tally(results, wrong);
    }

    /** Runs executions one at a time; returns their latencies in ns, sorted, and counts mismatches. */
    private static Latencies run(Path path, float[][] inputs, int executions, float[][] expected) {
        long[] ns = new long[executions];
        long wrong = 0;
        for (int i = 0; i < executions; i++) {
            float[] in = inputs[i % inputs.length];
            long start = System.nanoTime();
            float[] out = path.apply(in);
            ns[i] = System.nanoTime() - start;
            wrong += Arrays.equals(out, expected[i % inputs.length]) ? 0 : 1;
        }
        Arrays.sort(ns);
        return new Latencies(ns, wrong);
    }

    /** Runs executions with {@link #WINDOW} in flight; returns executions per second and counts mismatches. */
    private static Throughput pipelined(Pipelined path, float[][] inputs, int executions, float[][] expected) {
        Object[] window = new Object[WINDOW];
        long wrong = 0;
        long start = System.nanoTime();
        for (int i = 0; i < executions + WINDOW; i++) {
            int slot = i % WINDOW;
            if (i >= WINDOW) {
                float[] out = result(window[slot]);
                wrong += Arrays.equals(out, expected[(i - WINDOW) % inputs.length]) ? 0 : 1;
            }
            if (i < executions) {
                window[slot] = path.submit(inputs[i % inputs.length]);
            }
        }
        long elapsed = System.nanoTime() - start;
        return new Throughput(executions * 1e9 / elapsed, wrong);
    }

    @SuppressWarnings("unchecked")
    private static float[] result(Object future) {
        return future instanceof GraphFuture<?> g ? (float[]) g.get() : ((CompletableFuture<float[]>) future).join();
    }

    /**
     * Deterministic pseudo-random input vectors.
     *
     * @param count number of vectors
     * @param size  floats per vector
     * @param seed  the random seed
     * @return {@code count} vectors of {@code size} floats in [-2, 2)
     */
    static float[][] inputs(int count, int size, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        float[][] vs = new float[count][size];
        for (float[] v : vs) {
            for (int i = 0; i < size; i++) {
                v[i] = (float) (random.nextDouble() * 4 - 2);
            }
        }
        return vs;
    }

    /**
     * The pipeline as plain sequential code on the calling thread: the reference result.
     *
     * @param in the input vector
     * @return the softmax over the smoothed, scaled, normalized input
     */
    static float[] sequential(float[] in) {
        return new Softmax().apply(new Smooth().apply(new Affine(in.length).apply(new Normalize().apply(in))));
    }

    /** One execution, waited for. */
    private interface Path {
        float[] apply(float[] in);
    }

    /** One execution, started: returns a {@link GraphFuture} or a {@link CompletableFuture}. */
    private interface Pipelined {
        Object submit(float[] in);
    }

    private record Latencies(long[] sortedNs, long mismatches) {
    }

    private record Throughput(double perSecond, long mismatches) {
    }

    /** Results checked against the sequential computation, and those that differed. */
    private record Tally(long results, long mismatches) {
    }

    private record Stats(Latencies latency, Throughput throughput, Tally warmup) {
        long results() {
            return warmup.results + 2L * latency.sortedNs.length;
        }

        double medianUs() {
            return latency.sortedNs[latency.sortedNs.length / 2] / 1e3;
        }

        double p99Us() {
            long[] ns = latency.sortedNs;
            return ns[Math.max(0, (int) Math.ceil(ns.length * 0.99) - 1)] / 1e3;
        }

        double perSecond() {
            return throughput.perSecond;
        }

        long mismatches() {
            return latency.mismatches + throughput.mismatches + warmup.mismatches;
        }
    }

    /**
     * The four stage actors of one pipeline.
     *
     * @param normalize stage 1
     * @param affine    stage 2
     * @param smooth    stage 3
     * @param softmax   stage 4
     */
    record Stages(ActorRef<Normalize> normalize, ActorRef<Affine> affine, ActorRef<Smooth> smooth,
                  ActorRef<Softmax> softmax) {

        /**
         * Creates one actor per stage.
         *
         * @param kiln the runtime
         * @param size floats per vector
         * @return the actors
         */
        static Stages create(Kiln kiln, int size) {
            return new Stages(kiln.actor(Normalize::new), kiln.actor(() -> new Affine(size)),
                    kiln.actor(Smooth::new), kiln.actor(Softmax::new));
        }

        /**
         * Binds the chain of the four stages.
         *
         * @param in the graph input
         * @return the output node
         */
        Node<float[]> bind(InputNode<float[]> in) {
            Node<float[]> x = normalize.bind(Normalize::apply, in);
            x = affine.bind(Affine::apply, x);
            x = smooth.bind(Smooth::apply, x);
            return softmax.bind(Softmax::apply, x);
        }

        /**
         * Runs the chain through the dynamic path: each stage's future starts the next call.
         *
         * @param kiln the runtime hosting the actors
         * @param in   the input vector
         * @return the future of the output
         */
        CompletableFuture<float[]> call(Kiln kiln, float[] in) {
            return kiln.call(normalize, Normalize::apply, in)
                    .thenCompose(x -> kiln.call(affine, Affine::apply, x))
                    .thenCompose(x -> kiln.call(smooth, Smooth::apply, x))
                    .thenCompose(x -> kiln.call(softmax, Softmax::apply, x));
        }
    }

    /** Stage 1: zero mean, unit variance. Each call returns a new array (executions overlap in flight). */
    static final class Normalize {
        float[] apply(float[] x) {
            int n = x.length;
            float sum = 0;
            for (float v : x) {
                sum += v;
            }
            float mean = sum / n;
            float squares = 0;
            for (float v : x) {
                float d = v - mean;
                squares += d * d;
            }
            float scale = (float) (1 / Math.sqrt(squares / n + 1e-5f));
            float[] y = new float[n];
            for (int i = 0; i < n; i++) {
                y[i] = (x[i] - mean) * scale;
            }
            return y;
        }
    }

    /** Stage 2: per-element scale and bias, fixed weights made in the constructor. */
    static final class Affine {
        private final float[] weight;
        private final float[] bias;

        Affine(int size) {
            weight = new float[size];
            bias = new float[size];
            for (int i = 0; i < size; i++) {
                weight[i] = 0.5f + (i % 7) / 7f;
                bias[i] = ((i % 11) - 5) / 20f;
            }
        }

        float[] apply(float[] x) {
            float[] y = new float[x.length];
            for (int i = 0; i < x.length; i++) {
                y[i] = x[i] * weight[i] + bias[i];
            }
            return y;
        }
    }

    /** Stage 3: 1-D convolution with the binomial kernel [1 4 6 4 1] / 16, zero padded. */
    static final class Smooth {
        private static final float[] KERNEL = {1 / 16f, 4 / 16f, 6 / 16f, 4 / 16f, 1 / 16f};

        float[] apply(float[] x) {
            int n = x.length;
            float[] y = new float[n];
            for (int i = 0; i < n; i++) {
                float acc = 0;
                for (int k = 0; k < KERNEL.length; k++) {
                    int j = i + k - KERNEL.length / 2;
                    if (j >= 0 && j < n) {
                        acc += KERNEL[k] * x[j];
                    }
                }
                y[i] = acc;
            }
            return y;
        }
    }

    /** Stage 4: ReLU, then softmax. StrictMath keeps every path bit-for-bit equal to the reference. */
    static final class Softmax {
        float[] apply(float[] x) {
            int n = x.length;
            float max = 0; // ReLU output is >= 0
            for (float v : x) {
                max = Math.max(max, v);
            }
            float[] y = new float[n];
            float sum = 0;
            for (int i = 0; i < n; i++) {
                float e = (float) StrictMath.exp(Math.max(x[i], 0) - max);
                y[i] = e;
                sum += e;
            }
            float inv = 1 / sum;
            for (int i = 0; i < n; i++) {
                y[i] *= inv;
            }
            return y;
        }
    }
}
