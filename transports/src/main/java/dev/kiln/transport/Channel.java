package dev.kiln.transport;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;

/**
 * A channel from one writer to R readers with N slots: the value of execution {@code n}
 * lives in slot {@code n mod N} from the moment the writer publishes it until every reader
 * released it. Built from a {@link ChannelSpec} of the plan.
 *
 * <p>The writer calls {@link #offer} for sequences 0, 1, 2, ... in order; each reader calls
 * {@link #poll} then {@link #release} for the same sequences in order. Calls return status
 * codes and never block, so that a duty-cycle loop can wait with its idle strategy. The
 * writer and each reader are single threads (not necessarily the same over time, given a
 * happens-before hand-over).
 */
public interface Channel extends AutoCloseable {

    /** Returned by {@link #poll} while the writer has not published the sequence. */
    Object NOT_READY = new Object() {
        @Override
        public String toString() {
            return "NOT_READY";
        }
    };

    /** @return the plan's description of this channel */
    ChannelSpec spec();

    /**
     * Publishes the value of execution {@code sequence}.
     *
     * @param sequence the next sequence of the writer
     * @param value    the value (may be null)
     * @return false if a reader has not released {@code sequence - slots} yet: try again later
     */
    boolean offer(long sequence, Object value);

    /**
     * Whether every reader has released {@code sequence - slots}, so that {@link #offer} of {@code sequence}
     * finds its slot free; the writer thread only. Lets a writer that must prepare the slot's contents
     * elsewhere first (a GPU copy or send) check before it starts.
     *
     * @param sequence the writer's next sequence
     * @return true if its slot is free
     */
    boolean isFree(long sequence);

    /**
     * Reads the value of execution {@code sequence} in place.
     *
     * @param reader   the reader index
     * @param sequence the reader's next sequence
     * @return the value, or {@link #NOT_READY}
     */
    Object poll(int reader, long sequence);

    /**
     * Gives the slot of {@code sequence} back to the writer; on a channel that {@link #batches()
     * batches}, also every earlier slot this reader has not released yet.
     *
     * @param reader   the reader index
     * @param sequence the sequence read last
     */
    void release(int reader, long sequence);

    /**
     * Whether this channel takes batches: {@link #write} may leave a value unseen by readers until
     * {@link #publish()}, and {@link #release} of a sequence gives back every slot up to it, so that an
     * actor loop that runs several executions in a row publishes and releases once for all of them.
     * Channels that answer false (those shared with other processes, GPU channels) get one
     * {@link #offer} and one {@link #release} per execution.
     *
     * @return true for channels that batch
     */
    default boolean batches() {
        return false;
    }

    /**
     * Stores the value of execution {@code sequence} like {@link #offer}, but readers may not see it
     * (and are not woken) until the writer calls {@link #publish()}; the writer thread only. Channels
     * that do not {@link #batches() batch} publish at once.
     *
     * @param sequence the next sequence of the writer
     * @param value    the value (may be null)
     * @return false if a reader has not released {@code sequence - slots} yet: publish, then try again later
     */
    default boolean write(long sequence, Object value) {
        return offer(sequence, value);
    }

    /**
     * Makes every value stored with {@link #write} visible to the readers and wakes those that announced
     * they sleep, with one fence for the whole batch; the writer thread only.
     */
    default void publish() {
    }

    /**
     * Whether a writer or reader of this channel may run in another process. Such a peer cannot
     * signal this process's {@link Waker}s, so a waiting thread sleeps in {@link #awaitPublished}
     * or {@link #awaitReleased} instead of parking.
     *
     * @return true for channels shared between processes
     */
    default boolean crossesProcesses() {
        return false;
    }

    /**
     * Sleeps until {@code sequence} is published for {@code reader}, the timeout expires or the
     * thread is interrupted; the reader's thread only. Channels that do not cross processes do not
     * sleep here (their peers signal the reader's {@link Waker}) and return at once.
     *
     * @param reader       the reader index
     * @param sequence     the sequence to wait for
     * @param timeoutNanos longest wait in nanoseconds
     * @return whether the sequence is published
     */
    default boolean awaitPublished(int reader, long sequence, long timeoutNanos) {
        return false;
    }

    /**
     * Sleeps until every reader released {@code sequence - slots}, so that {@link #offer} of
     * {@code sequence} finds its slot free, the timeout expires or the thread is interrupted; the
     * writer's thread only. Channels that do not cross processes return at once.
     *
     * @param sequence     the sequence the writer wants to offer
     * @param timeoutNanos longest wait in nanoseconds
     * @return whether the slot is free
     */
    default boolean awaitReleased(long sequence, long timeoutNanos) {
        return false;
    }

    /** The side argument of {@link #peerLoss} for the writer's side. */
    int WRITER_SIDE = -1;

    /**
     * Whether a peer of one side of this channel is lost for good: its process or host is gone, or
     * unreachable past the channel's peer timeout. The thread of that side only; call it while the
     * side waits. Channels whose peers share the host return null: the runtime notices a dead JVM
     * of its host by itself.
     *
     * @param side the calling side: its reader index, or {@link #WRITER_SIDE}
     * @return null while the side's peers are reachable, else who was lost and why
     */
    default String peerLoss(int side) {
        return null;
    }

    /**
     * Memory in the slot of {@code sequence} where the writer may build a tensor's data in place,
     * so that offering a {@link dev.kiln.tensor.Tensor#view} of it copies nothing. Writer thread
     * only; the view must be offered for {@code sequence} (or not used at all) and not touched
     * after the offer.
     *
     * @param sequence the writer's next sequence
     * @param dtype    the tensor's element type
     * @param shape    the tensor's shape
     * @return the data region, or null when the channel passes values by reference (no copy to save),
     *         the slot is not free yet, or the tensor does not fit in it
     */
    default java.lang.foreign.MemorySegment claimTensor(long sequence, dev.kiln.tensor.DType dtype, long[] shape) {
        return null;
    }

    /** Frees the channel's memory; no call may follow. */
    @Override
    void close();
}
