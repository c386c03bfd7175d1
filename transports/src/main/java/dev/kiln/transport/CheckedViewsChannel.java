package dev.kiln.transport;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A debugging wrapper around a channel whose reads are views of its slots ({@link ShmChannel},
 * {@link AeronUdpChannel}): every tensor a reader polls, alone or inside an {@code Object[]}, is
 * handed out as a view whose memory belongs to a fresh shared {@link Arena}, and
 * {@link #release} closes that arena before the slot goes back to the writer. Code that keeps
 * such a tensor past its method and touches it later fails at once with
 * {@code IllegalStateException: Already closed}, instead of silently reading a later
 * execution's bytes. Other values are passed through (they are decoded copies).
 *
 * <p>Costs an arena per value read and a thread-local handshake per release, so it is off by
 * default ({@code CompileOptions.checkViews}). Thread-safety is the wrapped channel's: each
 * reader index is used by one thread.
 */
public final class CheckedViewsChannel implements Channel {

    private final Channel inner;
    private final int slots;
    /** The arena of each reader's live read, by reader and slot. */
    private final Arena[][] live;

    /** @param inner the channel to check; closed with this one */
    public CheckedViewsChannel(Channel inner) {
        this.inner = inner;
        this.slots = inner.spec().slots();
        this.live = new Arena[inner.spec().readers().size()][slots];
    }

    @Override
    public ChannelSpec spec() {
        return inner.spec();
    }

    @Override
    public boolean offer(long sequence, Object value) {
        return inner.offer(sequence, value);
    }

    @Override
    public boolean isFree(long sequence) {
        return inner.isFree(sequence);
    }

    @Override
    public Object poll(int reader, long sequence) {
        Object value = inner.poll(reader, sequence);
        if (value == NOT_READY || !holdsTensor(value)) {
            return value;
        }
        int slot = (int) (sequence % slots);
        closeLive(reader, slot);
        Arena arena = Arena.ofShared();
        live[reader][slot] = arena;
        return guard(value, arena);
    }

    @Override
    public void release(int reader, long sequence) {
        closeLive(reader, (int) (sequence % slots));
        inner.release(reader, sequence);
    }

    private void closeLive(int reader, int slot) {
        Arena arena = live[reader][slot];
        if (arena != null) {
            live[reader][slot] = null;
            arena.close();
        }
    }

    private static boolean holdsTensor(Object value) {
        if (value instanceof Tensor) {
            return true;
        }
        if (value instanceof Object[] array) {
            for (Object o : array) {
                if (holdsTensor(o)) {
                    return true;
                }
            }
        }
        return false;
    }

    @SuppressWarnings("restricted") // the view aliases the slot, which stays mapped while the channel is open
    private static Object guard(Object value, Arena arena) {
        if (value instanceof Tensor t) {
            MemorySegment data = t.data();
            return Tensor.view(MemorySegment.ofAddress(data.address()).reinterpret(data.byteSize(), arena, null),
                    t.dtype(), t.shape());
        }
        if (value instanceof Object[] array) {
            Object[] copy = array.clone();
            for (int i = 0; i < copy.length; i++) {
                copy[i] = guard(copy[i], arena);
            }
            return copy;
        }
        return value;
    }

    @Override
    public boolean crossesProcesses() {
        return inner.crossesProcesses();
    }

    @Override
    public boolean awaitPublished(int reader, long sequence, long timeoutNanos) {
        return inner.awaitPublished(reader, sequence, timeoutNanos);
    }

    @Override
    public boolean awaitReleased(long sequence, long timeoutNanos) {
        return inner.awaitReleased(sequence, timeoutNanos);
    }

    @Override
    public String peerLoss(int side) {
        return inner.peerLoss(side);
    }

    @Override
    public MemorySegment claimTensor(long sequence, DType dtype, long[] shape) {
        return inner.claimTensor(sequence, dtype, shape);
    }

    /** Closes the live views' arenas, then the wrapped channel. */
    @Override
    public void close() {
        for (int r = 0; r < live.length; r++) {
            for (int s = 0; s < slots; s++) {
                try {
                    closeLive(r, s);
                } catch (IllegalStateException e) {
                    // an arena still in use by a thread that is being torn down: the GC frees it
                }
            }
        }
        inner.close();
    }

    @Override
    public String toString() {
        return "CheckedViews(" + inner + ")";
    }
}
