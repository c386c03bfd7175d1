package dev.kiln.examples;

import dev.kiln.ActorOptions;
import dev.kiln.CompiledGraph;
import dev.kiln.GpuContext;
import dev.kiln.GraphFuture;
import dev.kiln.Kiln;
import dev.kiln.KilnOptions;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.cuda.Cuda;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.gpu.GpuKernel;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * A GPU pipeline of three actors that run real kernels on their own streams over device tensors that arrive
 * through Kiln's channels: {@code load} copies a host vector to the GPU, {@code affine} computes
 * {@code 2x + 1} with a CUDA kernel, {@code square} squares it with another kernel on the second GPU (or the
 * same one when there is only one) and copies the result back to the host for the driver. The GPU edges are a
 * same-device channel and NCCL (or same-device again on one GPU), as the plan printed at the start shows.
 *
 * <p>On a machine with CUDA the kernels are compiled with NVRTC and launched with the driver API; without
 * one, the demo runs on two simulated GPUs ({@link KilnOptions#simulatedGpus}) where each kernel runs its host
 * implementation, and everything else (devices, streams, events, copies, NCCL) follows CUDA's rules. Every
 * result is checked against the same computation on the host.
 *
 * <pre>
 * mvn -q -DskipTests -Pdemo verify -Ddemo.main=dev.kiln.examples.GpuPipelineDemo
 * </pre>
 */
public final class GpuPipelineDemo {

    /** Elements per vector. */
    public static final int SIZE = 4096;
    /** Executions in flight. */
    public static final int WINDOW = 8;

    /** {@code y = a * x + b}, element-wise. */
    public static final GpuKernel AFFINE = new GpuKernel("affine", """
            extern "C" __global__ void affine(const float* x, float* y, float a, float b, int n) {
                int i = blockIdx.x * blockDim.x + threadIdx.x;
                if (i < n) {
                    y[i] = a * x[i] + b;
                }
            }
            """, call -> {
                MemorySegment x = call.tensor(0);
                MemorySegment y = call.tensor(1);
                float a = call.f32(2);
                float b = call.f32(3);
                for (int i = 0; i < call.i32(4); i++) {
                    y.setAtIndex(ValueLayout.JAVA_FLOAT, i, a * x.getAtIndex(ValueLayout.JAVA_FLOAT, i) + b);
                }
            });

    /** {@code y = x * x}, element-wise. */
    public static final GpuKernel SQUARE = new GpuKernel("square", """
            extern "C" __global__ void square(const float* x, float* y, int n) {
                int i = blockIdx.x * blockDim.x + threadIdx.x;
                if (i < n) {
                    y[i] = x[i] * x[i];
                }
            }
            """, call -> {
                MemorySegment x = call.tensor(0);
                MemorySegment y = call.tensor(1);
                for (int i = 0; i < call.i32(2); i++) {
                    float v = x.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                    y.setAtIndex(ValueLayout.JAVA_FLOAT, i, v * v);
                }
            });

    private GpuPipelineDemo() {
    }

    /** Copies host vectors to its GPU, into one buffer it reuses every execution. */
    public static final class Loader {
        private DeviceTensor buffer;

        /**
         * @param values the vector
         * @return it on the GPU, on the actor's stream
         */
        public DeviceTensor load(float[] values) {
            GpuContext gpu = GpuContext.current();
            if (buffer == null || buffer.numel() != values.length) {
                buffer = gpu.allocate(DType.F32, values.length);
            }
            try (Tensor host = Tensor.of(values)) {
                gpu.copyIn(host, buffer);
            }
            return buffer;
        }
    }

    /** Runs {@link #AFFINE} into a buffer of its own. */
    public static final class Affine {
        private DeviceTensor out;

        /**
         * @param x a vector on this actor's GPU (borrowed from the channel until the method returns)
         * @return {@code 2x + 1}, on the actor's stream
         */
        public DeviceTensor apply(DeviceTensor x) {
            GpuContext gpu = GpuContext.current();
            if (out == null || out.numel() != x.numel()) {
                out = gpu.allocate(DType.F32, x.shape());
            }
            gpu.launch(AFFINE, GpuKernel.Shape.linear(x.numel(), 256), x, out, 2.0f, 1.0f, (int) x.numel());
            return out;
        }
    }

    /** Runs {@link #SQUARE} into a buffer of its own and hands the result to the host. */
    public static final class Square {
        private DeviceTensor out;

        /**
         * @param x a vector on this actor's GPU
         * @return {@code x * x}, copied to the host once the kernel has run
         */
        public float[] apply(DeviceTensor x) {
            GpuContext gpu = GpuContext.current();
            if (out == null || out.numel() != x.numel()) {
                out = gpu.allocate(DType.F32, x.shape());
            }
            gpu.launch(SQUARE, GpuKernel.Shape.linear(x.numel(), 256), x, out, (int) x.numel());
            return gpu.downloadFloats(out);
        }
    }

    /**
     * The demo's graph on a runtime: load on GPU 0, affine on GPU 0, square on GPU {@code lastGpu}.
     *
     * @param kiln    the runtime
     * @param in      the graph's input
     * @param lastGpu the device of the last stage
     * @return the output node
     */
    public static Node<float[]> build(Kiln kiln, InputNode<float[]> in, int lastGpu) {
        ActorRef<Loader> load = kiln.actor(Loader::new, ActorOptions.defaults().gpu(0).name("load"));
        ActorRef<Affine> affine = kiln.actor(Affine::new, ActorOptions.defaults().gpu(0).name("affine"));
        ActorRef<Square> square = kiln.actor(Square::new, ActorOptions.defaults().gpu(lastGpu).name("square"));
        return square.bind(Square::apply, affine.bind(Affine::apply, load.bind(Loader::load, in)));
    }

    /**
     * @param x a vector
     * @return {@code (2x + 1)^2}, as the pipeline computes it
     */
    public static float[] expected(float[] x) {
        float[] y = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            float v = 2.0f * x[i] + 1.0f;
            y[i] = v * v;
        }
        return y;
    }

    /**
     * @param execution an execution number
     * @return the demo's input for it
     */
    public static float[] input(long execution) {
        float[] x = new float[SIZE];
        for (int i = 0; i < SIZE; i++) {
            x[i] = (float) ((execution * 31 + i) % 1000) / 100f - 5f;
        }
        return x;
    }

    /**
     * Runs the demo: on this machine's GPUs when CUDA has any, else on two simulated GPUs.
     *
     * @param args optional: the number of executions (default 2000)
     * @throws Exception if an execution fails
     */
    public static void main(String[] args) throws Exception {
        int executions = args.length > 0 ? Integer.parseInt(args[0]) : 2000;
        boolean cuda = Cuda.isAvailable();
        KilnOptions options = cuda ? KilnOptions.defaults() : KilnOptions.defaults().simulatedGpus(2, 256L << 20);
        int gpus = cuda ? Cuda.deviceCount() : 2;
        System.out.println(cuda ? "CUDA: " + gpus + " GPU(s)" : "no CUDA (" + Cuda.unavailableReason()
                + "): running on 2 simulated GPUs");
        try (Kiln kiln = Kiln.local(options)) {
            InputNode<float[]> in = Graph.input();
            Node<float[]> out = build(kiln, in, Math.min(1, gpus - 1));
            CompileOptions compile = CompileOptions.defaults().maxInflight(WINDOW).bufferBytes(4L * SIZE);
            try (CompiledGraph<float[], float[]> g = kiln.compile(in, out, compile)) {
                System.out.print(g.plan());
                ArrayDeque<GraphFuture<float[]>> inFlight = new ArrayDeque<>();
                long start = System.nanoTime();
                long checked = 0;
                for (long e = 0; e < executions; e++) {
                    if (inFlight.size() == WINDOW) {
                        check(inFlight.removeFirst(), checked++);
                    }
                    inFlight.add(g.execute(input(e)));
                }
                while (!inFlight.isEmpty()) {
                    check(inFlight.removeFirst(), checked++);
                }
                double seconds = (System.nanoTime() - start) / 1e9;
                System.out.printf(Locale.ROOT, "%d executions of %d floats, every result exact: %.0f executions/s%n",
                        executions, SIZE, executions / seconds);
            }
        }
    }

    private static void check(GraphFuture<float[]> future, long execution) throws Exception {
        if (!java.util.Arrays.equals(expected(input(execution)), future.get(30, TimeUnit.SECONDS))) {
            throw new IllegalStateException("execution " + execution + ": wrong result");
        }
    }
}
