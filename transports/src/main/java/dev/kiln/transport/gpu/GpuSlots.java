package dev.kiln.transport.gpu;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * What the GPU channels share: slot strides, the checks on a written value with their messages,
 * reader views that are reused while a slot keeps a like tensor, and the host header that carries a
 * device tensor's element type and shape through a host channel ({@link Headers}).
 */
final class GpuSlots {

    /** Device slots start at multiples of this, as {@code cudaMalloc} aligns its allocations. */
    static final long ALIGN = 256;
    /** The most dimensions a device tensor may have on a channel that sends its shape as a header. */
    static final int MAX_RANK = 32;
    private static final DType[] DTYPES = DType.values();

    private GpuSlots() {
    }

    /** @return the distance between two device slots of {@code slotBytes} */
    static long stride(long slotBytes) {
        return Math.ceilDiv(Math.max(slotBytes, 1), ALIGN) * ALIGN;
    }

    /**
     * Checks that a value a writer offers can go into a device slot of {@code spec.slotBytes()}.
     *
     * @param device the writer's device, which a device tensor must be on
     * @return the value as a device tensor, or null when it is another value (an error record, null), which
     *         the channels pass on without a copy
     * @throws IllegalArgumentException for a host {@link Tensor}, a device tensor of another device, or one that is
     *                                  larger than a slot; the message names the channel, the devices or the size and
     *                                  the option to raise
     */
    static DeviceTensor check(ChannelSpec spec, Object value, int device) {
        if (value instanceof DeviceTensor t) {
            if (t.device() != device) {
                throw new IllegalArgumentException("channel c" + spec.id() + " (" + spec.transport() + ") sends from gpu"
                        + device + ", the writer's device, but the tensor is on gpu" + t.device() + ": return tensors on the"
                        + " actor's own device (GpuContext.device())");
            }
            if (t.byteSize() > spec.slotBytes()) {
                throw new IllegalArgumentException("channel c" + spec.id() + " (" + spec.transport() + "): a " + t.dtype()
                        + java.util.Arrays.toString(t.shape()) + " device tensor of " + t.byteSize()
                        + " bytes does not fit its device slots of " + spec.slotBytes() + " bytes; raise"
                        + " CompileOptions.bufferBytes to at least " + t.byteSize() + " (GPU slots are allocated once,"
                        + " at compile time, and do not grow: CompileOptions.slotGrowth applies to host channels)");
            }
            return t;
        }
        if (value instanceof Tensor) {
            throw new IllegalArgumentException("channel c" + spec.id() + " (" + spec.transport() + ") carries device"
                    + " tensors; a host Tensor cannot go through it: return a DeviceTensor, or declare the method to"
                    + " return Tensor so that the edge gets a host transport");
        }
        return null;
    }

    /**
     * @return {@code last} if it already describes {@code pointer} as {@code like}'s type and shape on
     *         {@code stream}, else a new view (so a steady stream of like tensors allocates nothing)
     */
    static DeviceTensor view(DeviceTensor last, int device, long pointer, long stream, DeviceTensor like) {
        if (last != null && last.pointer() == pointer && last.stream() == stream && last.dtype() == like.dtype()
                && last.rank() == like.rank()) {
            boolean same = true;
            for (int d = 0; d < like.rank() && same; d++) {
                same = last.dim(d) == like.dim(d);
            }
            if (same) {
                return last;
            }
        }
        return new DeviceTensor(device, pointer, like.dtype(), stream, like.shape());
    }

    /**
     * @return {@code last} if it already describes {@code pointer} as the host tensor {@code like}'s type and
     *         shape on {@code stream}, else a new view
     */
    static DeviceTensor view(DeviceTensor last, int device, long pointer, long stream, Tensor like) {
        if (last != null && last.pointer() == pointer && last.stream() == stream && last.dtype() == like.dtype()
                && last.rank() == like.rank()) {
            boolean same = true;
            for (int d = 0; d < like.rank() && same; d++) {
                same = last.dim(d) == like.dim(d);
            }
            if (same) {
                return last;
            }
        }
        return new DeviceTensor(device, pointer, like.dtype(), stream, like.shape());
    }

    /**
     * @throws IllegalArgumentException if {@code t} has more than {@link #MAX_RANK} dimensions
     */
    static void checkRank(ChannelSpec spec, DeviceTensor t) {
        if (t.rank() > MAX_RANK) {
            throw new IllegalArgumentException("channel c" + spec.id() + " (" + spec.transport() + ") sends shapes"
                    + " of at most " + MAX_RANK + " dimensions, got " + t.rank() + "; reshape the tensor");
        }
    }

    /** @return whether {@code value} is a header that {@link Headers#encode} made */
    static boolean isHeader(Object value) {
        return value instanceof Tensor t && t.dtype() == DType.I64 && t.rank() == 1 && t.dim(0) >= 1;
    }

    /**
     * Checks a header as a reader receives it, from the writer's process, before anything is read into a slot or
     * viewed through it: an element type this Kiln has, at most {@link #MAX_RANK} dimensions, none negative, and no
     * more bytes than a slot holds.
     *
     * @param sequence the sequence the header came with, for the message
     * @return the bytes of the device tensor the header describes
     * @throws IllegalStateException naming the channel, the sequence and what is wrong with the header
     */
    static long checkHeader(ChannelSpec spec, long sequence, Tensor header) {
        String at = "channel c" + spec.id() + " (" + spec.transport() + "): the writer's header of sequence "
                + sequence;
        long rank = header.dim(0) - 1;
        if (rank > MAX_RANK) {
            throw new IllegalStateException(at + " has " + rank + " dimensions, more than " + MAX_RANK);
        }
        long type = header.getLong(0);
        if (type < 0 || type >= DTYPES.length) {
            throw new IllegalStateException(at + " names element type " + type + ", not one of the " + DTYPES.length
                    + " this Kiln has");
        }
        long bytes = DTYPES[(int) type].byteSize();
        for (int d = 1; d <= rank; d++) {
            long n = header.getLong(d);
            if (n < 0) {
                throw new IllegalStateException(at + " has dimension " + (d - 1) + " of " + n);
            }
            try {
                bytes = Math.multiplyExact(bytes, n);
            } catch (ArithmeticException e) {
                throw new IllegalStateException(at + " announces more than " + Long.MAX_VALUE + " bytes, a slot holds "
                        + spec.slotBytes());
            }
        }
        if (bytes > spec.slotBytes()) {
            throw new IllegalStateException(at + " announces " + bytes + " bytes, a slot holds " + spec.slotBytes());
        }
        return bytes;
    }

    /**
     * @param header a header {@link #checkHeader} accepted
     * @return {@code last} if it already describes {@code pointer} as the header's type and shape on
     *         {@code stream}, else a new view
     */
    static DeviceTensor fromHeader(DeviceTensor last, int device, long pointer, long stream, Tensor header) {
        DType dtype = DTYPES[(int) header.getLong(0)];
        int rank = (int) header.dim(0) - 1;
        if (last != null && last.pointer() == pointer && last.stream() == stream && last.dtype() == dtype
                && last.rank() == rank) {
            boolean same = true;
            for (int d = 0; d < rank && same; d++) {
                same = last.dim(d) == header.getLong(d + 1);
            }
            if (same) {
                return last;
            }
        }
        long[] shape = new long[rank];
        for (int d = 0; d < rank; d++) {
            shape[d] = header.getLong(d + 1);
        }
        return new DeviceTensor(device, pointer, dtype, stream, shape);
    }

    /**
     * A writer's headers: per slot, an {@code I64} host tensor {@code [dtype ordinal, dim 0, dim 1, ...]}
     * describing the device tensor of that slot's sequence. A slot's header is rewritten only when the slot
     * is free again, so channels that pass it by reference are safe; views are kept per slot and rank, so
     * encoding allocates nothing after the first time. Writer thread only.
     */
    static final class Headers implements AutoCloseable {
        private final Arena arena = Arena.ofShared();
        private final MemorySegment[] memory;
        private final Tensor[][] views;

        Headers(int slots) {
            memory = new MemorySegment[slots];
            views = new Tensor[slots][MAX_RANK + 1];
            for (int s = 0; s < slots; s++) {
                memory[s] = arena.allocate(8L * (MAX_RANK + 1), 8);
            }
        }

        /**
         * @throws IllegalArgumentException if the tensor has more than {@link #MAX_RANK} dimensions
         */
        Tensor encode(ChannelSpec spec, int slot, DeviceTensor t) {
            checkRank(spec, t);
            int rank = t.rank();
            MemorySegment m = memory[slot];
            m.set(ValueLayout.JAVA_LONG, 0, t.dtype().ordinal());
            for (int d = 0; d < rank; d++) {
                m.set(ValueLayout.JAVA_LONG, 8L * (d + 1), t.dim(d));
            }
            Tensor view = views[slot][rank];
            if (view == null) {
                view = Tensor.view(m.asSlice(0, 8L * (rank + 1)), DType.I64, rank + 1);
                views[slot][rank] = view;
            }
            return view;
        }

        @Override
        public void close() {
            arena.close();
        }
    }
}
