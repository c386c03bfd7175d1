package dev.kiln;

import dev.kiln.cuda.MemcpyKind;
import dev.kiln.executor.ActorGpu;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.gpu.DeviceOps;
import dev.kiln.transport.gpu.GpuKernel;

import java.lang.foreign.MemorySegment;

/**
 * The GPU of the running actor: for an actor placed with {@link ActorOptions#gpu(int)}, its device (current
 * on the actor's thread for the thread's whole life) and its stream, on which Kiln orders its copies for the
 * actor: tensors the actor receives from GPU channels are ready on this stream, and tensors it returns are
 * read by the channels after the work enqueued on it. So a kernel the actor launches on {@link #stream()} (or
 * through {@link #launch}) is ordered with Kiln's copies without any synchronization on the host.
 *
 * <pre>{@code
 * public DeviceTensor scale(DeviceTensor x) {              // x: borrowed until the method returns
 *     GpuContext gpu = GpuContext.current();
 *     if (y == null) {
 *         y = gpu.allocate(DType.F32, x.shape());           // the actor's own buffer, reused every execution
 *     }
 *     gpu.launch(SCALE, GpuKernel.Shape.linear(x.numel(), 256), x, y, 2.0f, (int) x.numel());
 *     return y;                                             // lent to the channel until its copy is done
 * }
 * }</pre>
 *
 * <p>The helpers work the same on GPUs and on simulated GPUs ({@code KilnOptions.simulatedGpus}); a
 * {@link GpuKernel} carries both its CUDA C source and a host implementation for the simulator. Device memory
 * from {@link #allocate} or {@link #upload} belongs to the caller, which frees it ({@link #free}); a tensor an
 * actor returns must stay valid until the channel has copied it, which is ordered on the stream, so an actor
 * may reuse one output buffer every execution. Obtain the context on the actor's thread (inside its factory or
 * its methods); its methods may then be called from that thread only.
 */
public final class GpuContext {

    private static final ThreadLocal<GpuContext> CONTEXTS = new ThreadLocal<>();

    private final ActorGpu gpu;
    private final DeviceOps ops;

    private GpuContext(ActorGpu gpu) {
        this.gpu = gpu;
        this.ops = gpu.ops();
    }

    /**
     * {@return the GPU context of the actor running on this thread}
     *
     * @throws IllegalStateException if this thread is not the thread of an actor placed on a GPU
     */
    public static GpuContext current() {
        GpuContext c = CONTEXTS.get();
        ActorGpu g = ActorGpu.current();
        if (c != null && c.gpu == g) {
            return c;
        }
        if (g == null) {
            throw new IllegalStateException("thread " + Thread.currentThread().getName() + " is not the thread of an"
                    + " actor placed on a GPU: create the actor with ActorOptions.gpu(n) and call GpuContext.current()"
                    + " from its factory or its methods");
        }
        c = new GpuContext(g);
        CONTEXTS.set(c);
        return c;
    }

    /** {@return the actor's device index, as its JVM numbers devices} */
    public int device() {
        return gpu.device();
    }

    /** {@return the UUID of the actor's device, the same in every JVM of the host} */
    public String deviceUuid() {
        return gpu.uuid();
    }

    /** {@return the actor's stream ({@code cudaStream_t}); launch the actor's kernels on it} */
    public long stream() {
        return gpu.stream();
    }

    /** {@return the device operations behind this context: CUDA, or the simulator} */
    public DeviceOps ops() {
        return ops;
    }

    /** {@return whether the device is simulated} */
    public boolean simulated() {
        return ops instanceof dev.kiln.transport.gpu.SimulatedDeviceOps;
    }

    /**
     * Allocates device memory for a tensor on the actor's device (contents undefined).
     *
     * @param dtype the element type
     * @param shape the dimensions
     * @return the tensor, on the actor's stream; free it with {@link #free}
     */
    public DeviceTensor allocate(DType dtype, long... shape) {
        long bytes = dtype.byteSize();
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in " + java.util.Arrays.toString(shape));
            }
            bytes = Math.multiplyExact(bytes, d);
        }
        long pointer = bytes == 0 ? 0 : ops.allocate(device(), bytes);
        return new DeviceTensor(device(), pointer, dtype, stream(), shape);
    }

    /**
     * Frees memory from {@link #allocate} or {@link #upload}; waits for the device's work that uses it.
     *
     * @param tensor the tensor; borrowed tensors (from channels) must not be freed
     */
    public void free(DeviceTensor tensor) {
        if (tensor.pointer() != 0) {
            ops.free(tensor.pointer());
        }
    }

    /**
     * Copies a host tensor to new device memory, and waits for the copy (so the host tensor may change at once).
     *
     * @param host the host tensor
     * @return the device tensor, on the actor's stream; free it with {@link #free}
     */
    public DeviceTensor upload(Tensor host) {
        DeviceTensor t = allocate(host.dtype(), host.shape());
        copyIn(host, t);
        return t;
    }

    /**
     * Copies floats to new device memory.
     *
     * @param values the elements, row-major
     * @param shape  the dimensions, whose product is {@code values.length}; none for one dimension
     * @return the device tensor, on the actor's stream; free it with {@link #free}
     */
    public DeviceTensor upload(float[] values, long... shape) {
        try (Tensor host = Tensor.of(values, shape)) {
            return upload(host);
        }
    }

    /**
     * Copies a host tensor into existing device memory, and waits for the copy.
     *
     * @param host   the source
     * @param device the destination, on the actor's device, at least as large
     * @throws IllegalArgumentException if the destination is smaller or on another device
     */
    public void copyIn(Tensor host, DeviceTensor device) {
        check(device, host.byteSize());
        if (host.byteSize() > 0) {
            ops.copyAsync(device(), device.pointer(), host.data().address(), host.byteSize(), MemcpyKind.HOST_TO_DEVICE,
                    stream());
            ops.synchronizeStream(device(), stream());
        }
    }

    /**
     * Copies a device tensor to a new host tensor, after the work enqueued on its stream and on the actor's,
     * and waits for the copy.
     *
     * @param tensor a tensor on the actor's device
     * @return a host tensor that owns its memory; close it
     */
    public Tensor download(DeviceTensor tensor) {
        Tensor host = Tensor.allocate(tensor.dtype(), tensor.shape());
        try {
            copyOut(tensor, host.data());
        } catch (RuntimeException e) {
            host.close();
            throw e;
        }
        return host;
    }

    /**
     * Copies an F32 device tensor to a new array, after the work enqueued on its stream and on the actor's.
     *
     * @param tensor an F32 tensor on the actor's device
     * @return its elements, row-major
     * @throws IllegalArgumentException if it is not F32
     */
    public float[] downloadFloats(DeviceTensor tensor) {
        if (tensor.dtype() != DType.F32) {
            throw new IllegalArgumentException("downloadFloats reads F32 tensors, got " + tensor.dtype());
        }
        try (Tensor host = download(tensor)) {
            return host.toFloatArray();
        }
    }

    private void copyOut(DeviceTensor tensor, MemorySegment host) {
        check(tensor, tensor.byteSize());
        if (tensor.byteSize() == 0) {
            return;
        }
        if (tensor.stream() != stream()) {
            long ready = ops.createEvent(device(), false);
            try {
                ops.recordEvent(device(), ready, tensor.stream());
                ops.waitEvent(device(), stream(), ready);
            } finally {
                ops.destroyEvent(ready);
            }
        }
        ops.copyAsync(device(), host.address(), tensor.pointer(), tensor.byteSize(), MemcpyKind.DEVICE_TO_HOST, stream());
        ops.synchronizeStream(device(), stream());
    }

    private void check(DeviceTensor tensor, long bytes) {
        if (tensor.device() != device()) {
            throw new IllegalArgumentException("the tensor is on gpu" + tensor.device() + ", the actor on gpu" + device()
                    + ": use each tensor on its own device");
        }
        if (tensor.byteSize() < bytes) {
            throw new IllegalArgumentException("a " + tensor.dtype() + java.util.Arrays.toString(tensor.shape())
                    + " device tensor of " + tensor.byteSize() + " bytes cannot hold " + bytes + " bytes");
        }
    }

    /**
     * Launches a kernel on the actor's stream (compiled with NVRTC on a GPU, its host implementation on simulated
     * GPUs); returns without waiting.
     *
     * @param kernel the kernel
     * @param shape  grid, block and shared memory
     * @param args   its arguments: {@code DeviceTensor} (on the actor's device), {@code Integer}, {@code Long},
     *               {@code Float} or {@code Double}
     */
    public void launch(GpuKernel kernel, GpuKernel.Shape shape, Object... args) {
        ops.launch(device(), stream(), kernel, shape, args);
    }

    /** Waits until the work enqueued on the actor's stream so far has run. */
    public void synchronize() {
        ops.synchronizeStream(device(), stream());
    }

    @Override
    public String toString() {
        return "GpuContext(" + gpu + ")";
    }
}
