package dev.kiln;

import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.gpu.GpuKernel;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayDeque;

/**
 * GPU actors and kernels for the executor's GPU tests. Every kernel has CUDA C source and a host implementation, so
 * the same actors run on simulated GPUs in CI and on a GPU. Each method that returns a device tensor has a buffer of its
 * own, reused every execution (the channels order the next kernel after their copy).
 */
final class GpuActors {

    /** Elements per test tensor. */
    static final int N = 256;

    /** {@code x[i] = base + i}. */
    static final GpuKernel FILL = new GpuKernel("fill", """
            extern "C" __global__ void fill(float* x, float base, int n) {
                int i = blockIdx.x * blockDim.x + threadIdx.x;
                if (i < n) x[i] = base + i;
            }
            """, call -> {
                MemorySegment x = call.tensor(0);
                for (int i = 0; i < call.i32(2); i++) {
                    x.setAtIndex(ValueLayout.JAVA_FLOAT, i, call.f32(1) + i);
                }
            });

    /** {@code y[i] = a * x[i] + b}. */
    static final GpuKernel AFFINE = new GpuKernel("affine", """
            extern "C" __global__ void affine(const float* x, float* y, float a, float b, int n) {
                int i = blockIdx.x * blockDim.x + threadIdx.x;
                if (i < n) y[i] = a * x[i] + b;
            }
            """, call -> {
                MemorySegment x = call.tensor(0);
                MemorySegment y = call.tensor(1);
                for (int i = 0; i < call.i32(4); i++) {
                    y.setAtIndex(ValueLayout.JAVA_FLOAT, i, call.f32(2) * x.getAtIndex(ValueLayout.JAVA_FLOAT, i)
                            + call.f32(3));
                }
            });

    private GpuActors() {
    }

    /** How long a test waits for one result. */
    static final Duration GET = Duration.ofSeconds(60);

    /** Checks one execution's result. */
    @FunctionalInterface
    interface Check<O> {
        void check(int execution, O result) throws Exception;
    }

    /** Runs {@code executions} pipelined executions, {@code window} in flight, checking each with {@code check}. */
    static <O> void pipelined(CompiledGraph<Integer, O> g, int executions, int window, Check<O> check)
            throws Exception {
        ArrayDeque<GraphFuture<O>> inFlight = new ArrayDeque<>();
        int done = 0;
        for (int e = 0; e < executions; e++) {
            if (inFlight.size() == window) {
                check.check(done, inFlight.removeFirst().get(GET));
                done++;
            }
            inFlight.add(g.execute(e));
        }
        while (!inFlight.isEmpty()) {
            check.check(done, inFlight.removeFirst().get(GET));
            done++;
        }
    }

    /** @return the transport the plan chose for a channel */
    static Transport transport(ExecutionPlan plan, int channel) {
        return plan.channels().get(channel).transport();
    }

    /** @return the floats as little-endian bytes */
    static byte[] bytes(float[] values) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 * values.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(values);
        return b.array();
    }

    /** @return what {@link Producer#make} gives for an execution: {@code seq + i} */
    static float[] made(int seq) {
        float[] x = new float[N];
        for (int i = 0; i < N; i++) {
            x[i] = seq + i;
        }
        return x;
    }

    /** @return {@code a * x + b}, as {@link #AFFINE} computes it */
    static float[] affine(float[] x, float a, float b) {
        float[] y = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = a * x[i] + b;
        }
        return y;
    }

    /** Makes a device tensor from the execution's number. */
    public static final class Producer {
        private final float scale;
        private DeviceTensor buffer;

        public Producer() {
            this(1);
        }

        public Producer(float scale) {
            this.scale = scale;
        }

        public DeviceTensor make(int seq) {
            GpuContext gpu = GpuContext.current();
            if (buffer == null) {
                buffer = gpu.allocate(DType.F32, N);
            }
            gpu.launch(FILL, GpuKernel.Shape.linear(N, 128), buffer, (float) seq, N);
            return buffer;
        }

        /** Like {@link #make}, but each element scaled: {@code scale * (seq + i)}. */
        public DeviceTensor scaled(int seq) {
            GpuContext gpu = GpuContext.current();
            if (buffer == null) {
                buffer = gpu.allocate(DType.F32, N);
            }
            gpu.launch(FILL, GpuKernel.Shape.linear(N, 128), buffer, (float) seq, N);
            gpu.launch(AFFINE, GpuKernel.Shape.linear(N, 128), buffer, buffer, scale, 0f, N);
            return buffer;
        }

        /** Throws on odd executions. */
        public DeviceTensor failOnOdd(int seq) {
            if (seq % 2 == 1) {
                throw new IllegalStateException("odd execution " + seq);
            }
            return scaled(seq);
        }

        /** Returns a tensor of another device than its own, against the rules. */
        public DeviceTensor wrongDevice(int seq) {
            GpuContext gpu = GpuContext.current();
            if (seq % 2 == 0) {
                return make(seq);
            }
            int other = gpu.device() == 0 ? 1 : 0;
            long p = gpu.ops().allocate(other, 4L * N);
            return new DeviceTensor(other, p, DType.F32, 0, N);
        }
    }

    /** {@code 2x + 1} on its device, into buffers of its own. */
    public static final class Scaler {
        private DeviceTensor a;
        private DeviceTensor b;

        public DeviceTensor apply(DeviceTensor x) {
            a = run(x, a);
            return a;
        }

        public DeviceTensor again(DeviceTensor x) {
            b = run(x, b);
            return b;
        }

        private static DeviceTensor run(DeviceTensor x, DeviceTensor out) {
            GpuContext gpu = GpuContext.current();
            DeviceTensor o = out != null ? out : gpu.allocate(DType.F32, x.shape());
            gpu.launch(AFFINE, GpuKernel.Shape.linear(x.numel(), 128), x, o, 2f, 1f, (int) x.numel());
            return o;
        }
    }

    /** Reads GPU edges: copies to the host on its GPU, or gets the staged host copy without one. */
    public static final class Reader {
        public float[] download(DeviceTensor t) {
            return GpuContext.current().downloadFloats(t);
        }

        public float[] host(Tensor t) {
            return t.toFloatArray();
        }

        /** For readers in other JVMs: the floats as little-endian bytes, which cross JVMs without registration. */
        public byte[] downloadBytes(DeviceTensor t) {
            return bytes(GpuContext.current().downloadFloats(t));
        }

        /** The staged host copy as little-endian bytes. */
        public byte[] hostBytes(Tensor t) {
            return bytes(t.toFloatArray());
        }

        /** @return {device, the thread's current device, stream != 0 ? 1 : 0, simulated ? 1 : 0} */
        public long[] where() {
            GpuContext gpu = GpuContext.current();
            return new long[] {gpu.device(), gpu.ops().currentDevice(), gpu.stream() != 0 ? 1 : 0, gpu.simulated() ? 1 : 0};
        }

        /** @return the current device of a new thread started by this actor */
        public int newThreadDevice() throws InterruptedException {
            int[] seen = {-1};
            GpuContext gpu = GpuContext.current();
            Thread t = Thread.ofPlatform().start(() -> seen[0] = gpu.ops().currentDevice());
            t.join();
            return seen[0];
        }

        public String noGpu() {
            return GpuContext.current().toString();
        }

        public long pid() {
            return ProcessHandle.current().pid();
        }

        public int echo(int x) {
            return x;
        }
    }
}
