package dev.kiln.bench;

import dev.kiln.ActorOptions;
import dev.kiln.CompiledGraph;
import dev.kiln.GpuContext;
import dev.kiln.GraphFuture;
import dev.kiln.Kiln;
import dev.kiln.KilnOptions;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.cuda.MemcpyKind;
import dev.kiln.cuda.Nvrtc;
import dev.kiln.examples.GpuPipelineDemo;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.gpu.DeviceOps;
import dev.kiln.transport.gpu.GpuKernel;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Comparator;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Executions per second of a 2-stage GPU pipeline, a compiled Kiln graph, against the same work launched back to
 * back on one stream (the floor), in the same run, on GPU 0. One execution takes a vector of
 * {@value GpuPipelineDemo#SIZE} floats from the host and gives {@code (2x + 1)^2} back to the host, with
 * {@link GpuPipelineDemo}'s two kernels:
 * <ul>
 *   <li>{@link Way#KILN}: actor {@link First} (GPU 0) copies the vector to its device buffer ({@code copyIn}, waited
 *       for) and runs {@code AFFINE}; a same-device channel hands the result to actor {@link Second} (GPU 0), which runs
 *       {@code SQUARE} and copies the result to the host ({@code downloadFloats}, waited for). {@value #WINDOW}
 *       executions in flight: one operation submits one execution and waits for the oldest, as
 *       {@code ThroughputBenchmark} does, so each operation finishes one execution;</li>
 *   <li>{@link Way#FLOOR}: the same host-to-device copy (waited for), the two kernels back to back on one stream and
 *       the same device-to-host copy (waited for), from the same host buffers, on the JMH thread: no channel, no
 *       other thread, one execution at a time.</li>
 * </ul>
 * {@code @Setup} checks every element of {@code 3 x }{@value #WINDOW} results exactly against the host's computation.
 *
 * <p>Without a GPU, or without NVRTC (which compiles the kernels), {@code @Setup} fails at once with the reason;
 * {@code -Dkiln.bench.gpu=simulated} runs both on a simulated GPU instead ({@link GpuBench}). {@code gpu/verify} runs
 * it.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class GpuPipelineBenchmark {

    /** Executions in flight, and the graph's {@code maxInflight}. */
    static final int WINDOW = 8;
    private static final int INPUTS = 16;
    private static final Duration GET = Duration.ofSeconds(60);

    /** How the executions run. */
    public enum Way {
        /** The floor: the copies and both kernels on one stream of the JMH thread. */
        FLOOR,
        /** A compiled graph of two GPU actors, {@value #WINDOW} executions in flight. */
        KILN
    }

    /** Stage 1: the input to its GPU, then {@code AFFINE} into a buffer of its own. */
    public static final class First {
        private DeviceTensor in;
        private DeviceTensor out;

        /**
         * @param x the input vector
         * @return {@code 2x + 1} on this actor's GPU, on its stream
         */
        public DeviceTensor apply(float[] x) {
            GpuContext gpu = GpuContext.current();
            if (in == null) {
                in = gpu.allocate(DType.F32, x.length);
                out = gpu.allocate(DType.F32, x.length);
            }
            try (Tensor host = Tensor.of(x)) {
                gpu.copyIn(host, in);
            }
            gpu.launch(GpuPipelineDemo.AFFINE, GpuKernel.Shape.linear(x.length, 256), in, out, 2.0f, 1.0f, x.length);
            return out;
        }
    }

    /** Stage 2: {@code SQUARE} into a buffer of its own, then the result to the host. */
    public static final class Second {
        private DeviceTensor out;

        /**
         * @param x a vector on this actor's GPU, borrowed from the channel
         * @return {@code x * x}, on the host
         */
        public float[] apply(DeviceTensor x) {
            GpuContext gpu = GpuContext.current();
            if (out == null) {
                out = gpu.allocate(DType.F32, x.shape());
            }
            gpu.launch(GpuPipelineDemo.SQUARE, GpuKernel.Shape.linear(x.numel(), 256), x, out, (int) x.numel());
            return gpu.downloadFloats(out);
        }
    }

    /** The graph and its window, or the floor's stream and buffers. */
    @State(Scope.Benchmark)
    public static class Pipeline {
        /** How the executions run. */
        @Param({"FLOOR", "KILN"})
        public Way way;

        final float[][] inputs = new float[INPUTS][];
        long next;
        // KILN
        Path shm;
        Kiln kiln;
        CompiledGraph<float[], float[]> graph;
        final GraphFuture<?>[] ring = new GraphFuture<?>[WINDOW];
        long submitted;
        long finished;
        // FLOOR
        DeviceOps ops;
        long stream;
        DeviceTensor in;
        DeviceTensor mid;
        DeviceTensor out;

        /**
         * Starts the graph (or opens GPU 0 for the floor) and checks {@code 3 x }{@value #WINDOW} results exactly; the
         * graph then has {@value #WINDOW}{@code  - 1} executions in flight.
         *
         * @throws IllegalStateException without a GPU or NVRTC (the reason), or on a wrong result
         * @throws IOException           if the simulated GPU's directory cannot be made
         */
        @Setup(Level.Trial)
        public void setUp() throws IOException {
            GpuBench.requireGpu("GpuPipelineBenchmark");
            if (!GpuBench.simulated() && !Nvrtc.isAvailable()) {
                throw new IllegalStateException("GpuPipelineBenchmark launches kernels, which NVRTC compiles: "
                        + Nvrtc.unavailableReason());
            }
            for (int i = 0; i < INPUTS; i++) {
                inputs[i] = GpuPipelineDemo.input(i);
            }
            try {
                if (way == Way.KILN) {
                    startGraph();
                } else {
                    ops = GpuBench.open("GpuPipelineBenchmark");
                    stream = ops.createStream(0);
                    long bytes = 4L * GpuPipelineDemo.SIZE;
                    in = new DeviceTensor(0, ops.allocate(0, bytes), DType.F32, stream, GpuPipelineDemo.SIZE);
                    mid = new DeviceTensor(0, ops.allocate(0, bytes), DType.F32, stream, GpuPipelineDemo.SIZE);
                    out = new DeviceTensor(0, ops.allocate(0, bytes), DType.F32, stream, GpuPipelineDemo.SIZE);
                }
                for (int i = 0; i < 3 * WINDOW; i++) {
                    long e = next;
                    float[] got = execution();
                    if (!Arrays.equals(GpuPipelineDemo.expected(inputs[(int) (e % INPUTS)]), got)) {
                        throw new IllegalStateException("GpuPipelineBenchmark " + way + ": execution " + e
                                + " gave a wrong result");
                    }
                }
            } catch (IOException | RuntimeException | Error e) {
                tearDown();
                throw e;
            }
        }

        private void startGraph() throws IOException {
            KilnOptions options = KilnOptions.defaults();
            if (GpuBench.simulated()) {
                // a machine of its own, apart from any other simulated runtime of this host
                shm = Files.createTempDirectory(Files.isDirectory(Path.of("/dev/shm")) ? Path.of("/dev/shm")
                        : Path.of(System.getProperty("java.io.tmpdir")), "kiln-bench-gpu-");
                options = options.shmDirectory(shm).simulatedGpus(1, GpuBench.SIMULATED_BYTES);
            }
            kiln = Kiln.local(options);
            ActorRef<First> first = kiln.actor(First::new, ActorOptions.defaults().gpu(0).name("first"));
            ActorRef<Second> second = kiln.actor(Second::new, ActorOptions.defaults().gpu(0).name("second"));
            InputNode<float[]> x = Graph.input();
            graph = kiln.compile(x, second.bind(Second::apply, first.bind(First::apply, x)), CompileOptions.defaults()
                    .maxInflight(WINDOW).bufferBytes(4L * GpuPipelineDemo.SIZE).getTimeout(GET).submitTimeout(GET));
            if (graph.plan().channels().get(1).transport() != Transport.GPU_SAME_DEVICE) {
                throw new IllegalStateException("GpuPipelineBenchmark: the stages should be joined by a same-device"
                        + " channel:\n" + graph.plan());
            }
            for (int i = 0; i < WINDOW - 1; i++) {
                submit();
            }
        }

        private void submit() {
            ring[(int) (submitted % WINDOW)] = graph.execute(inputs[(int) (submitted % INPUTS)]);
            submitted++;
        }

        /** One execution: the floor runs it; the graph submits one and returns the oldest one's result. */
        float[] execution() {
            next++;
            if (way == Way.FLOOR) {
                return floor(inputs[(int) ((next - 1) % INPUTS)]);
            }
            submit();
            float[] result = (float[]) ring[(int) (finished % WINDOW)].get(GET);
            finished++;
            return result;
        }

        private float[] floor(float[] x) {
            int n = x.length;
            try (Tensor host = Tensor.of(x)) {
                ops.copyAsync(0, in.pointer(), host.data().address(), host.byteSize(), MemcpyKind.HOST_TO_DEVICE, stream);
                ops.synchronizeStream(0, stream);
            }
            GpuKernel.Shape shape = GpuKernel.Shape.linear(n, 256);
            ops.launch(0, stream, GpuPipelineDemo.AFFINE, shape, in, mid, 2.0f, 1.0f, n);
            ops.launch(0, stream, GpuPipelineDemo.SQUARE, shape, mid, out, n);
            try (Tensor host = Tensor.allocate(DType.F32, n)) {
                ops.copyAsync(0, host.data().address(), out.pointer(), host.byteSize(), MemcpyKind.DEVICE_TO_HOST,
                        stream);
                ops.synchronizeStream(0, stream);
                return host.toFloatArray();
            }
        }

        /** Closes the graph and the runtime, or frees the floor's buffers; safe after a failed setup. */
        @TearDown(Level.Trial)
        public void tearDown() {
            try {
                if (graph != null) {
                    graph.close();
                    graph = null;
                }
                if (kiln != null) {
                    kiln.close();
                    kiln = null;
                }
                if (ops != null) {
                    for (DeviceTensor t : new DeviceTensor[] {in, mid, out}) {
                        if (t != null) {
                            ops.free(t.pointer());
                        }
                    }
                    if (stream != 0) {
                        ops.destroyStream(stream);
                    }
                }
            } finally {
                if (ops != null) {
                    ops.close();
                    ops = null;
                }
                if (shm != null) {
                    delete(shm);
                    shm = null;
                }
            }
        }
    }

    private static void delete(Path directory) {
        try (Stream<Path> all = Files.walk(directory)) {
            for (Path p : all.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove " + directory, e);
        }
    }

    /**
     * One execution: submitted with {@value #WINDOW}{@code  - 1} others in flight (the graph), or run alone (the floor).
     *
     * @param p the state
     * @return the result, so that nothing is optimized away
     */
    @Benchmark
    public float[] execution(Pipeline p) {
        return p.execution();
    }
}
