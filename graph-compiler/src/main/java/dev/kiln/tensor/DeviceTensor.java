package dev.kiln.tensor;

import java.util.Arrays;
import java.util.Objects;

/**
 * A dense, contiguous (row-major, no strides) n-dimensional array in GPU memory, described by
 * value: the CUDA device, the device address of its first byte, a {@link DType}, a shape, and
 * the CUDA stream whose work produces its contents. An actor method whose declared return type is
 * {@code DeviceTensor} makes its edges GPU edges: the compiler plans them with the GPU transports
 * ({@code Transport.GPU_SAME_DEVICE}, {@code CUDA_IPC}, {@code NCCL}) or CPU staging
 * ({@code Transport.STAGED}).
 *
 * <p><b>Ownership.</b> A {@code DeviceTensor} is a descriptor: it never allocates, owns or frees
 * device memory, and dropping it frees nothing. The memory belongs to the code that allocated it
 * (for example with {@code dev.kiln.cuda.Cuda.malloc} or JCuda), which frees it. The contract of
 * the GPU channels (planned; see {@code docs/gpu.md}, not yet verified on a GPU):
 * <ul>
 *   <li>A tensor returned by an actor method is lent to the channel for that execution's WRITE:
 *       the writer must keep the memory alive and unchanged until the WRITE operation of its
 *       schedule has finished (the channel has copied or sent the bytes, ordered after
 *       {@link #stream()}); afterwards the writer may reuse or free it.</li>
 *   <li>A tensor an actor method receives as an argument from a GPU channel points into that
 *       channel's receive slot on the reader's device: it is borrowed, valid only until the method
 *       returns, and must not be freed. Copy it (a device-to-device copy on the reader's stream)
 *       to keep it.</li>
 * </ul>
 *
 * <p><b>Streams.</b> {@link #stream()} is the {@code cudaStream_t} on which the producer enqueued
 * the work that writes this memory ({@link #DEFAULT_STREAM}, 0, for the legacy default stream).
 * A consumer must order its reads after that work (wait for an event recorded on that stream, or
 * synchronize it); the GPU channels do so before they copy or send.
 *
 * <p><b>JCuda.</b> {@code dev.kiln.cuda.JCudaPointers.toPointer(tensor.pointer())} gives the
 * {@code jcuda.Pointer} to hand to JCuda kernels, and
 * {@code new DeviceTensor(device, JCudaPointers.address(pointer), dtype, stream, shape)} wraps
 * memory JCuda allocated.
 *
 * <p>Immutable and thread-safe. Equality is by value (device, address, dtype, shape, stream).
 */
public final class DeviceTensor {

    /** The stream handle of the legacy default stream. */
    public static final long DEFAULT_STREAM = 0;

    private final int device;
    private final long pointer;
    private final DType dtype;
    private final long[] shape;
    private final long byteSize;
    private final long stream;

    /**
     * Describes device memory as a tensor; allocates nothing.
     *
     * @param device  the CUDA device index that holds the memory, >= 0
     * @param pointer the device address of the first element; 0 only for an empty tensor
     * @param dtype   element type
     * @param stream  the {@code cudaStream_t} whose work produces the contents, {@link #DEFAULT_STREAM} for the default stream
     * @param shape   dimensions, each >= 0 (none for a scalar); copied
     * @throws IllegalArgumentException if the device is negative, a dimension is negative, the size
     *                                  overflows a {@code long}, or the pointer is 0 for a non-empty tensor
     * @throws NullPointerException     if {@code dtype} or {@code shape} is null
     */
    public DeviceTensor(int device, long pointer, DType dtype, long stream, long... shape) {
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(shape, "shape");
        if (device < 0) {
            throw new IllegalArgumentException("device must be >= 0, got " + device);
        }
        long numel = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
            }
            try {
                numel = Math.multiplyExact(numel, d);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has more than Long.MAX_VALUE elements", e);
            }
        }
        try {
            this.byteSize = Math.multiplyExact(numel, dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(dtype + Arrays.toString(shape) + " is larger than Long.MAX_VALUE bytes", e);
        }
        if (pointer == 0 && byteSize > 0) {
            throw new IllegalArgumentException("null device pointer for " + dtype + Arrays.toString(shape)
                    + " (" + byteSize + " bytes)");
        }
        this.device = device;
        this.pointer = pointer;
        this.dtype = dtype;
        this.shape = shape.clone();
        this.stream = stream;
    }

    /** {@return the CUDA device index that holds the memory} */
    public int device() {
        return device;
    }

    /** {@return the device address of the first element (a {@code CUdeviceptr}; not dereferenceable on the host)} */
    public long pointer() {
        return pointer;
    }

    /** {@return the element type} */
    public DType dtype() {
        return dtype;
    }

    /** {@return a copy of the dimensions} */
    public long[] shape() {
        return shape.clone();
    }

    /** {@return the number of dimensions (0 for a scalar)} */
    public int rank() {
        return shape.length;
    }

    /**
     * {@return the size of dimension {@code i}}
     *
     * @param i a dimension index, 0 to {@code rank() - 1}
     * @throws IndexOutOfBoundsException if {@code i} is out of range
     */
    public long dim(int i) {
        return shape[i];
    }

    /** {@return the number of elements (1 for a scalar)} */
    public long numel() {
        return byteSize / dtype.byteSize();
    }

    /** {@return the size of the data in bytes: {@code numel() * dtype().byteSize()}} */
    public long byteSize() {
        return byteSize;
    }

    /** {@return the {@code cudaStream_t} whose work produces the contents; {@link #DEFAULT_STREAM} for the default stream} */
    public long stream() {
        return stream;
    }

    /**
     * @param other another object
     * @return whether it describes the same memory the same way (device, address, dtype, shape, stream)
     */
    @Override
    public boolean equals(Object other) {
        return other instanceof DeviceTensor t && t.device == device && t.pointer == pointer && t.dtype == dtype
                && t.stream == stream && Arrays.equals(t.shape, shape);
    }

    /** @return a hash of the fields {@link #equals} compares */
    @Override
    public int hashCode() {
        return Objects.hash(device, pointer, dtype, stream, Arrays.hashCode(shape));
    }

    /** @return e.g. {@code DeviceTensor[F32[2, 3] on gpu0 at 0x7f0000000000, stream 0x0]} */
    @Override
    public String toString() {
        return "DeviceTensor[" + dtype + Arrays.toString(shape) + " on gpu" + device + " at 0x"
                + Long.toHexString(pointer) + ", stream 0x" + Long.toHexString(stream) + "]";
    }
}
