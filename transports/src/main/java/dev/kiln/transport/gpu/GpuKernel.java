package dev.kiln.transport.gpu;

import java.lang.foreign.MemorySegment;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * A kernel an actor launches on its stream ({@link DeviceOps#launch}): CUDA C source for GPUs, and a host
 * implementation for simulated GPUs, so that the same actor runs on both. On a GPU the source is compiled
 * once per device with NVRTC ({@code --gpu-architecture=compute_XY} of the device) and the function
 * {@link #name()} is launched through the driver API; declare it {@code extern "C" __global__} so that its
 * name is not mangled. On simulated GPUs {@link #host()} runs once per launch, in stream order, with the
 * arguments resolved ({@link Call}); it should compute what the whole grid computes.
 *
 * <pre>{@code
 * static final GpuKernel SCALE = new GpuKernel("scale", """
 *         extern "C" __global__ void scale(float* x, float a, int n) {
 *             int i = blockIdx.x * blockDim.x + threadIdx.x;
 *             if (i < n) x[i] *= a;
 *         }""", call -> {
 *             MemorySegment x = call.tensor(0);
 *             float a = call.f32(1);
 *             for (int i = 0; i < call.i32(2); i++) {
 *                 x.setAtIndex(ValueLayout.JAVA_FLOAT, i, x.getAtIndex(ValueLayout.JAVA_FLOAT, i) * a);
 *             }
 *         });
 * }</pre>
 *
 * @param name   the {@code __global__} function's name, a C identifier
 * @param source CUDA C source that defines it
 * @param host   what the kernel does, on host memory, for simulated GPUs
 */
public record GpuKernel(String name, String source, HostKernel host) {

    private static final Pattern IDENTIFIER = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*");

    /**
     * Checks the values.
     *
     * @throws IllegalArgumentException if the name is not a C identifier or the source does not mention it
     * @throws NullPointerException     on a null component
     */
    public GpuKernel {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(source, "source");
        Objects.requireNonNull(host, "host");
        if (!IDENTIFIER.matcher(name).matches() || !source.contains(name)) {
            throw new IllegalArgumentException("a kernel's name must be a C identifier that its source defines"
                    + " (extern \"C\" __global__ void " + name + "(...)), got '" + name + "'");
        }
    }

    /** What a kernel does on simulated GPUs. */
    @FunctionalInterface
    public interface HostKernel {
        /**
         * Runs the whole launch.
         *
         * @param call the launch: its shape and arguments
         */
        void run(Call call);
    }

    /**
     * One launch as the host implementation sees it.
     */
    public interface Call {
        /** @return the launch's grid, block and shared memory */
        Shape shape();

        /**
         * @param arg an argument index
         * @return the memory of the {@code DeviceTensor} argument {@code arg}, {@code byteSize()} bytes
         * @throws IllegalArgumentException if that argument is not a tensor
         */
        MemorySegment tensor(int arg);

        /**
         * @param arg an argument index
         * @return the {@code Integer} argument
         */
        int i32(int arg);

        /**
         * @param arg an argument index
         * @return the {@code Long} argument
         */
        long i64(int arg);

        /**
         * @param arg an argument index
         * @return the {@code Float} argument
         */
        float f32(int arg);

        /**
         * @param arg an argument index
         * @return the {@code Double} argument
         */
        double f64(int arg);
    }

    /**
     * The grid and block of a launch.
     *
     * @param gridX       blocks in x, >= 1
     * @param gridY       blocks in y, >= 1
     * @param gridZ       blocks in z, >= 1
     * @param blockX      threads per block in x, >= 1
     * @param blockY      threads per block in y, >= 1
     * @param blockZ      threads per block in z, >= 1
     * @param sharedBytes dynamic shared memory per block, >= 0
     */
    public record Shape(int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ, int sharedBytes) {

        /**
         * Checks the values.
         *
         * @throws IllegalArgumentException on a dimension below 1 or negative shared memory
         */
        public Shape {
            if (gridX < 1 || gridY < 1 || gridZ < 1 || blockX < 1 || blockY < 1 || blockZ < 1 || sharedBytes < 0) {
                throw new IllegalArgumentException("grid and block dimensions must be >= 1 and shared memory >= 0, got "
                        + "grid " + gridX + "x" + gridY + "x" + gridZ + ", block " + blockX + "x" + blockY + "x" + blockZ
                        + ", " + sharedBytes + " shared bytes");
            }
        }

        /**
         * A one-dimensional launch of at least {@code threads} threads.
         *
         * @param threads   threads wanted, >= 1
         * @param blockSize threads per block, 1 to 1024
         * @return {@code ceil(threads / blockSize)} blocks of {@code blockSize}
         * @throws IllegalArgumentException if the grid would exceed {@code Integer.MAX_VALUE} blocks
         */
        public static Shape linear(long threads, int blockSize) {
            if (threads < 1 || blockSize < 1 || blockSize > 1024) {
                throw new IllegalArgumentException("need >= 1 thread and 1 to 1024 threads per block, got " + threads
                        + " and " + blockSize);
            }
            long blocks = Math.ceilDiv(threads, blockSize);
            if (blocks > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(threads + " threads need more than Integer.MAX_VALUE blocks");
            }
            return new Shape((int) blocks, 1, 1, blockSize, 1, 1, 0);
        }
    }
}
