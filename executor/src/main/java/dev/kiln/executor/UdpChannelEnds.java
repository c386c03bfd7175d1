package dev.kiln.executor;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.transport.AeronUdpChannel;
import dev.kiln.transport.Channel;

import java.util.List;

/**
 * The sides of one Aeron UDP channel that live in this JVM, as one {@link Channel}: the writer's
 * side if the writer is here, and the side of each reader that is here. Each side is its own
 * {@link AeronUdpChannel} with its own owner thread (the actor that writes, each actor that reads),
 * so this class only routes each call to the side it belongs to and names the lost peer's process
 * in {@link #peerLoss}.
 *
 * <p>Thread-safety is the sides': each method is for the thread of the side it names.
 */
final class UdpChannelEnds implements Channel {

    private final ChannelSpec spec;
    private final AeronUdpChannel writer;
    private final AeronUdpChannel[] readers;
    private final String writerProcess;
    private final List<String> readerProcesses;

    /**
     * @param spec            the plan's channel
     * @param writer          the writer's side, or null if the writer lives elsewhere
     * @param readers         by reader index, the sides of the readers here (null elsewhere)
     * @param writerProcess   the writer's process name, for messages
     * @param readerProcesses by reader index, the readers' process names, for messages
     */
    UdpChannelEnds(ChannelSpec spec, AeronUdpChannel writer, AeronUdpChannel[] readers, String writerProcess,
                   List<String> readerProcesses) {
        this.spec = spec;
        this.writer = writer;
        this.readers = readers;
        this.writerProcess = writerProcess;
        this.readerProcesses = List.copyOf(readerProcesses);
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
    public Object poll(int reader, long sequence) {
        return readers[reader].poll(reader, sequence);
    }

    @Override
    public void release(int reader, long sequence) {
        readers[reader].release(reader, sequence);
    }

    /** @return true: the peers of a UDP channel run in other processes */
    @Override
    public boolean crossesProcesses() {
        return true;
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
        AeronUdpChannel s = side == WRITER_SIDE ? writer : readers[side];
        int lost = s.lostPeer();
        if (lost == AeronUdpChannel.NO_PEER_LOST) {
            return null;
        }
        String process = lost == AeronUdpChannel.WRITER ? writerProcess : readerProcesses.get(lost);
        return "c" + spec.id() + " lost " + process + ": " + s.lossReason();
    }

    @Override
    public void close() {
        RuntimeException failure = null;
        if (writer != null) {
            failure = closeOne(writer, null);
        }
        for (AeronUdpChannel r : readers) {
            if (r != null) {
                failure = closeOne(r, failure);
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    private static RuntimeException closeOne(AeronUdpChannel side, RuntimeException failure) {
        try {
            side.close();
        } catch (RuntimeException e) {
            if (failure == null) {
                return e;
            }
            failure.addSuppressed(e);
        }
        return failure;
    }

    @Override
    public String toString() {
        return "UdpChannelEnds(c" + spec.id() + (writer != null ? ", writer" : "") + ")";
    }
}
