package dev.kiln.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Objects;

/**
 * A dense, contiguous (row-major, no strides) n-dimensional array in off-heap memory: a
 * {@link DType}, a shape and a {@link MemorySegment} of {@code numel * dtype.byteSize()}
 * little-endian bytes.
 *
 * <p>Ownership: a tensor made by {@link #allocate}, {@code of(...)} or {@link #copyOf} owns its
 * memory in a shared {@link Arena}; {@link #close()} frees it, and any access afterwards
 * throws {@link IllegalStateException}. A tensor made by {@link #view} borrows memory it does
 * not own (for example a channel slot, valid only until the method that received it returns);
 * its {@code close()} does nothing. Use {@link #copyOf} to keep a borrowed tensor.
 *
 * <p>Who owns a tensor at each step of a graph (docs/tensors.md):
 * <ul>
 *   <li><b>Argument</b>: a tensor an actor method receives is borrowed, valid until the method returns
 *       (from another JVM it is a view of a channel slot). Do not close it, keep it or return it: copy
 *       it ({@link #copyOf}) to keep it.</li>
 *   <li><b>Returned tensor you made</b> ({@link #allocate}, {@code of(...)}): it passes to Kiln, which hands
 *       it by reference to the next steps in the same JVM (or copies it into a channel slot to another JVM).
 *       Kiln does not close tensors it did not allocate.</li>
 *   <li><b>{@code Outputs.tensor}</b>: Kiln's. In a graph step whose result goes to another actor, Kiln
 *       reuses or frees it once no step of its execution can read it ({@code maxInflight + 1} executions
 *       later, or when the graph closes), and frees one the method did not return at once. Across JVMs
 *       it is built in the outgoing channel slot.</li>
 *   <li><b>Channel slot</b>: the channel's; a slot is reused once every reader released its execution.</li>
 *   <li><b>The graph's result</b> (what {@code get()} returns): the caller's; close it when done.</li>
 * </ul>
 * {@link #liveAllocations()} counts the owning tensors not closed yet.
 *
 * <p>Element reads and writes are not synchronized: publish a tensor to another thread
 * through a channel or another happens-before edge. {@code close()} must not race with access.
 */
public final class Tensor implements AutoCloseable {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final DType dtype;
    private final long[] shape;
    private final long numel;
    /** Tensors that own memory and are not closed: Kiln's allocator accounting. */
    private static final java.util.concurrent.atomic.LongAdder LIVE = new java.util.concurrent.atomic.LongAdder();

    private final MemorySegment data;
    private final Arena arena;

    private Tensor(DType dtype, long[] shape, MemorySegment data, Arena arena) {
        this.dtype = dtype;
        this.shape = shape;
        this.numel = numel(shape);
        this.data = data;
        this.arena = arena;
    }

    /**
     * Allocates a zeroed tensor that owns its memory.
     *
     * @param dtype element type
     * @param shape dimensions, each >= 0 (none for a scalar)
     * @return the tensor; close it to free the memory
     */
    public static Tensor allocate(DType dtype, long... shape) {
        long[] s = checkShape(shape);
        long bytes = Math.multiplyExact(numel(s), dtype.byteSize());
        Arena arena = Arena.ofShared();
        Tensor t = new Tensor(dtype, s, arena.allocate(bytes, 64), arena);
        LIVE.increment();
        return t;
    }

    /**
     * How many tensors in this JVM own memory and are not closed yet ({@link #allocate}, {@code of(...)},
     * {@link #copyOf}, and those Kiln allocates for {@code Outputs.tensor}): a leak shows as a count that grows.
     * Cheap (a striped counter), for tests and monitoring.
     *
     * @return the number of live owning tensors
     */
    public static long liveAllocations() {
        return LIVE.sum();
    }

    /**
     * Borrows {@code data} as a tensor, without copying; the caller keeps ownership.
     *
     * @param data  at least {@code numel * dtype.byteSize()} bytes; only that prefix is used
     * @param dtype element type
     * @param shape dimensions
     * @return a view; its {@code close()} does nothing
     * @throws IllegalArgumentException if {@code data} is too small
     */
    public static Tensor view(MemorySegment data, DType dtype, long... shape) {
        long[] s = checkShape(shape);
        long bytes = Math.multiplyExact(numel(s), dtype.byteSize());
        if (data.byteSize() < bytes) {
            throw new IllegalArgumentException("segment of " + data.byteSize() + " bytes is smaller than "
                    + dtype + Arrays.toString(s) + " (" + bytes + " bytes)");
        }
        return new Tensor(dtype, s, data.asSlice(0, bytes), null);
    }

    /**
     * {@return an F32 tensor owning a copy of {@code values}}
     *
     * @param values elements in row-major order
     * @param shape  dimensions whose product is {@code values.length}; none for a 1-D tensor
     */
    public static Tensor of(float[] values, long... shape) {
        Tensor t = allocate(DType.F32, shapeFor(values.length, shape));
        MemorySegment.copy(values, 0, t.data, F32, 0, values.length);
        return t;
    }

    /**
     * {@return an F64 tensor owning a copy of {@code values}}
     *
     * @param values elements in row-major order
     * @param shape  dimensions whose product is {@code values.length}; none for a 1-D tensor
     */
    public static Tensor of(double[] values, long... shape) {
        Tensor t = allocate(DType.F64, shapeFor(values.length, shape));
        MemorySegment.copy(values, 0, t.data, F64, 0, values.length);
        return t;
    }

    /**
     * {@return an I32 tensor owning a copy of {@code values}}
     *
     * @param values elements in row-major order
     * @param shape  dimensions whose product is {@code values.length}; none for a 1-D tensor
     */
    public static Tensor of(int[] values, long... shape) {
        Tensor t = allocate(DType.I32, shapeFor(values.length, shape));
        MemorySegment.copy(values, 0, t.data, I32, 0, values.length);
        return t;
    }

    /**
     * {@return an I64 tensor owning a copy of {@code values}}
     *
     * @param values elements in row-major order
     * @param shape  dimensions whose product is {@code values.length}; none for a 1-D tensor
     */
    public static Tensor of(long[] values, long... shape) {
        Tensor t = allocate(DType.I64, shapeFor(values.length, shape));
        MemorySegment.copy(values, 0, t.data, I64, 0, values.length);
        return t;
    }

    /**
     * {@return a tensor owning a copy of {@code values}}
     *
     * @param dtype  {@link DType#I8} or {@link DType#U8}
     * @param values elements in row-major order
     * @param shape  dimensions whose product is {@code values.length}; none for a 1-D tensor
     */
    public static Tensor of(DType dtype, byte[] values, long... shape) {
        requireDType(dtype, DType.I8, DType.U8);
        Tensor t = allocate(dtype, shapeFor(values.length, shape));
        MemorySegment.copy(values, 0, t.data, ValueLayout.JAVA_BYTE, 0, values.length);
        return t;
    }

    /**
     * {@return a tensor owning a copy of {@code bits}}
     *
     * @param dtype {@link DType#F16} or {@link DType#BF16}
     * @param bits  the raw 16-bit patterns in row-major order
     * @param shape dimensions whose product is {@code bits.length}; none for a 1-D tensor
     */
    public static Tensor of(DType dtype, short[] bits, long... shape) {
        requireDType(dtype, DType.F16, DType.BF16);
        Tensor t = allocate(dtype, shapeFor(bits.length, shape));
        MemorySegment.copy(bits, 0, t.data, I16, 0, bits.length);
        return t;
    }

    /**
     * Copies the remaining bytes of {@code buffer} (position to limit; the position is not moved).
     *
     * @param buffer little-endian element bytes
     * @param dtype  element type
     * @param shape  dimensions matching the byte count
     * @return a tensor owning a copy
     * @throws IllegalArgumentException if the byte count does not match
     */
    public static Tensor of(ByteBuffer buffer, DType dtype, long... shape) {
        long[] s = checkShape(shape);
        long bytes = numel(s) * dtype.byteSize();
        if (buffer.remaining() != bytes) {
            throw new IllegalArgumentException("buffer has " + buffer.remaining() + " bytes, " + dtype
                    + Arrays.toString(s) + " needs " + bytes);
        }
        Tensor t = allocate(dtype, s);
        MemorySegment.copy(MemorySegment.ofBuffer(buffer), 0, t.data, 0, bytes);
        return t;
    }

    /**
     * {@return a tensor owning a copy of its data}
     *
     * @param source any tensor, e.g. a borrowed view
     */
    public static Tensor copyOf(Tensor source) {
        Tensor t = allocate(source.dtype, source.shape);
        MemorySegment.copy(source.data, 0, t.data, 0, source.byteSize());
        return t;
    }

    /** {@return the element type} */
    public DType dtype() {
        return dtype;
    }

    /** {@return a copy of the dimensions} */
    public long[] shape() {
        return shape.clone();
    }

    /** {@return the number of dimensions} */
    public int rank() {
        return shape.length;
    }

    /**
     * {@return its size}
     *
     * @param dim a dimension index
     */
    public long dim(int dim) {
        return shape[dim];
    }

    /** {@return the number of elements} */
    public long numel() {
        return numel;
    }

    /** {@return the data size in bytes} */
    public long byteSize() {
        return data.byteSize();
    }

    /** {@return the data; borrowed views stay valid only as long as their owner says} */
    public MemorySegment data() {
        return data;
    }

    /** {@return whether this tensor owns (and {@link #close()} frees) its memory} */
    public boolean ownsMemory() {
        return arena != null;
    }

    /**
     * {@return the F32 element}
     *
     * @param index element index in row-major order
     */
    public float getFloat(long index) {
        return data.getAtIndex(F32, index);
    }

    /**
     * Sets an F32 element.
     *
     * @param index element index in row-major order
     * @param value the F32 element
     */
    public void setFloat(long index, float value) {
        data.setAtIndex(F32, index, value);
    }

    /**
     * {@return the F64 element}
     *
     * @param index element index in row-major order
     */
    public double getDouble(long index) {
        return data.getAtIndex(F64, index);
    }

    /**
     * {@return the I32 element}
     *
     * @param index element index in row-major order
     */
    public int getInt(long index) {
        return data.getAtIndex(I32, index);
    }

    /**
     * {@return the I64 element}
     *
     * @param index element index in row-major order
     */
    public long getLong(long index) {
        return data.getAtIndex(I64, index);
    }

    /** {@return the F32 elements as a new array} */
    public float[] toFloatArray() {
        requireDType(dtype, DType.F32);
        return data.toArray(F32);
    }

    /** {@return the F64 elements as a new array} */
    public double[] toDoubleArray() {
        requireDType(dtype, DType.F64);
        return data.toArray(F64);
    }

    /** {@return the I32 elements as a new array} */
    public int[] toIntArray() {
        requireDType(dtype, DType.I32);
        return data.toArray(I32);
    }

    /** {@return the I64 elements as a new array} */
    public long[] toLongArray() {
        requireDType(dtype, DType.I64);
        return data.toArray(I64);
    }

    /** {@return the I8 or U8 elements as a new array} */
    public byte[] toByteArray() {
        requireDType(dtype, DType.I8, DType.U8);
        return data.toArray(ValueLayout.JAVA_BYTE);
    }

    /** {@return the F16 or BF16 bit patterns as a new array} */
    public short[] toShortBits() {
        requireDType(dtype, DType.F16, DType.BF16);
        return data.toArray(I16);
    }

    /**
     * {@return whether {@code other} has the same dtype, shape and bytes}
     *
     * @param other another tensor, or null
     */
    public boolean contentEquals(Tensor other) {
        return other != null && dtype == other.dtype && Arrays.equals(shape, other.shape)
                && data.mismatch(other.data) < 0;
    }

    /** Frees the memory if this tensor owns it; idempotent. Borrowed views are left alone. */
    @Override
    public void close() {
        if (arena != null && arena.scope().isAlive()) {
            arena.close(); // throws if another thread closed it first: counted once
            LIVE.decrement();
        }
    }

    @Override
    public String toString() {
        return "Tensor(" + dtype + Arrays.toString(shape) + (arena == null ? ", view" : "") + ")";
    }

    private static long[] shapeFor(int length, long[] shape) {
        long[] s = shape.length == 0 ? new long[] {length} : checkShape(shape);
        if (numel(s) != length) {
            throw new IllegalArgumentException("shape " + Arrays.toString(s) + " holds " + numel(s)
                    + " elements, got " + length);
        }
        return s;
    }

    private static long[] checkShape(long[] shape) {
        Objects.requireNonNull(shape, "shape");
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
        }
        return shape.clone();
    }

    private static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    private static void requireDType(DType actual, DType... allowed) {
        for (DType d : allowed) {
            if (d == actual) {
                return;
            }
        }
        throw new IllegalArgumentException("expected " + Arrays.toString(allowed) + ", tensor is " + actual);
    }
}
