package dev.kiln.executor;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.transport.Channel;

import java.util.List;
import java.util.function.IntFunction;

/**
 * The ends of one channel that live in this JVM, as one {@link Channel}, for transports whose writer and each
 * reader hold an end of their own (Aeron UDP, staged, CUDA IPC, NCCL): the writer's end if the writer is here,
 * and the end of each reader that is here. Each end has its own owner thread (the actor that writes, each actor
 * that reads), so this class routes each call to the end it belongs to. {@link #close()} closes the writer's end
 * first, then the readers' (the order CUDA IPC needs), then what the ends share (an NCCL channel's side channel).
 *
 * <p>Thread-safety is the ends': each method is for the thread of the end it names.
 */
final class ChannelEnds implements Channel {

    private final ChannelSpec spec;
    private final Channel writer;
    private final Channel[] readers;
    private final boolean crosses;
    private final IntFunction<String> peerLoss;
    private final List<AutoCloseable> shared;

    /**
     * @param spec     the plan's channel
     * @param writer   the writer's end, or null if the writer lives elsewhere
     * @param readers  by reader index, the ends of the readers here (null elsewhere)
     * @param peerLoss by side ({@link Channel#WRITER_SIDE} or a reader index), why that side's peer is lost for good, or
     *                 null; may be null for ends that never lose a peer this way
     * @param shared   closed after the ends, in order
     */
    ChannelEnds(ChannelSpec spec, Channel writer, Channel[] readers, IntFunction<String> peerLoss,
                List<AutoCloseable> shared) {
        this.spec = spec;
        this.writer = writer;
        this.readers = readers.clone();
        this.peerLoss = peerLoss;
        this.shared = List.copyOf(shared);
        boolean crossing = writer != null && writer.crossesProcesses();
        for (Channel r : readers) {
            crossing |= r != null && r.crossesProcesses();
        }
        this.crosses = crossing;
    }

    @Override
    public ChannelSpec spec() {
        return spec;
    }

    @Override
    public boolean offer(long sequence, Object value) {
        return writer.offer(sequence, value);
    }

    @Override
    public boolean isFree(long sequence) {
        return writer.isFree(sequence);
    }

    @Override
    public Object poll(int reader, long sequence) {
        return readers[reader].poll(reader, sequence);
    }

    @Override
    public void release(int reader, long sequence) {
        readers[reader].release(reader, sequence);
    }

    @Override
    public boolean crossesProcesses() {
        return crosses;
    }

    @Override
    public boolean awaitPublished(int reader, long sequence, long timeoutNanos) {
        return readers[reader].awaitPublished(reader, sequence, timeoutNanos);
    }

    @Override
    public boolean awaitReleased(long sequence, long timeoutNanos) {
        return writer.awaitReleased(sequence, timeoutNanos);
    }

    @Override
    public String peerLoss(int side) {
        if (peerLoss != null) {
            return peerLoss.apply(side);
        }
        return side == WRITER_SIDE ? writer.peerLoss(side) : readers[side].peerLoss(side);
    }

    @Override
    public void close() {
        RuntimeException failure = null;
        if (writer != null) {
            failure = closeOne(writer, null);
        }
        for (Channel r : readers) {
            if (r != null) {
                failure = closeOne(r, failure);
            }
        }
        for (AutoCloseable s : shared) {
            failure = closeOne(s, failure);
        }
        if (failure != null) {
            throw failure;
        }
    }

    private static RuntimeException closeOne(AutoCloseable c, RuntimeException failure) {
        try {
            c.close();
        } catch (Exception e) {
            RuntimeException r = e instanceof RuntimeException re ? re : new IllegalStateException(e);
            if (failure == null) {
                return r;
            }
            failure.addSuppressed(r);
        }
        return failure;
    }

    @Override
    public String toString() {
        return "ChannelEnds(c" + spec.id() + " " + spec.transport() + (writer != null ? ", writer" : "") + ")";
    }
}
