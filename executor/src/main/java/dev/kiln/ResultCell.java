package dev.kiln;

import dev.kiln.executor.KilnEvents;
import dev.kiln.executor.TaskError;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * The preallocated state of one slot of a compiled graph: the execution in it, its outputs as they arrive, and its
 * outcome until it is delivered (into its future, or kept for {@code take}). Written by the submitting thread before
 * the execution is published and by the collecting thread after; {@link #hold} hands a kept outcome to the taker
 * (release/acquire through {@link #HOLD}).
 */
final class ResultCell {

    /** The access to {@link #hold}. */
    static final VarHandle HOLD;
    /** A cell's hold: no execution for {@code take}, one in flight, its outcome waiting to be taken. */
    static final int FREE = 0;
    static final int WAITING = 1;
    static final int READY = 2;

    long seq = -1;
    GraphFuture<?> future;
    /** The outputs of the execution so far, by distinct output channel; until the slot is reclaimed. */
    final Object[] values;
    int arrived;
    /** Whether the outcome was delivered (a failed output settles it before its siblings arrive). */
    boolean settled;
    /** For take: the single result, or the failure ({@link TaskError}, {@link Failure}); null for kept outputs. */
    Object result;
    /** For take on a graph of several outputs: the values by output position. */
    final Object[] kept;
    /** FREE, WAITING or READY; release/acquire. */
    int hold;
    long submittedAt;
    KilnEvents.Execution event;

    /**
     * @param outputs   how many distinct output channels the graph reads
     * @param positions how many outputs the graph has
     */
    ResultCell(int outputs, int positions) {
        values = new Object[outputs];
        kept = new Object[positions];
    }

    static {
        try {
            HOLD = MethodHandles.lookup().findVarHandle(ResultCell.class, "hold", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /**
     * A failure kept in a cell for {@code take}, told apart from a result that happens to be an exception.
     *
     * @param error what {@code take} throws
     */
    record Failure(RuntimeException error) {
    }
}
