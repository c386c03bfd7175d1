package dev.kiln.transport;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The other JVM ("host") of {@link AeronUdpChannelCrossProcessTest}: starts its own media driver in
 * its own directory and passes {@link MixedValues} through an {@link AeronUdpChannel} over UDP on
 * 127.0.0.1, as the reader or as the writer, waiting with the channel's await methods. When done it
 * prints {@code done <count>} and stays up (its channel open) until killed.
 *
 * <p>Arguments: {@code reader|writer <directory> <writer endpoint> <reader endpoint> <count>}.
 * Exit status: 1 a value was wrong or a wait timed out (the reason is printed first).
 */
public final class AeronUdpChannelChild {

    /** Longest wait for one sequence: far beyond any normal delay, short of the test's own timeout. */
    static final long WAIT_NANOS = TimeUnit.SECONDS.toNanos(60);
    /** Long enough that a slow start on a loaded machine never counts as a lost peer. */
    static final long PEER_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(20);

    private AeronUdpChannelChild() {
    }

    /** @return the channel both JVMs use: 4 slots, 1 reader, 4 KiB slots to start with */
    static ChannelSpec spec() {
        return ShmChannelTest.spec(4, 1, 4096);
    }

    /**
     * @param writerEndpoint where the writer receives releases
     * @param readerEndpoint where the reader receives data
     * @return the route both JVMs use
     */
    static AeronUdpChannel.Route route(String writerEndpoint, String readerEndpoint) {
        return new AeronUdpChannel.Route(writerEndpoint, List.of(readerEndpoint), 2001, 2002, 8192, 1 << 20);
    }

    /** @param args see the class comment */
    public static void main(String[] args) throws InterruptedException {
        long count = Long.parseLong(args[4]);
        AeronUdpChannel.Route route = route(args[2], args[3]);
        try (UdpHost host = UdpHost.start("child", Path.of(args[1]))) {
            String failure;
            AeronUdpChannel ch;
            if (args[0].equals("reader")) {
                ch = AeronUdpChannel.reader(host.aeron(), spec(), route, 0, MixedValues.codec(), true, PEER_TIMEOUT_NANOS, null);
                failure = read(ch, count);
            } else {
                ch = AeronUdpChannel.writer(host.aeron(), spec(), route, MixedValues.codec(), true, PEER_TIMEOUT_NANOS, null);
                failure = write(ch, count);
            }
            if (failure != null) {
                System.out.println(failure);
                System.exit(1);
            }
            System.out.println("done " + count);
            while (true) {
                // Keep the stream alive (heartbeats, status messages) until the test kills this JVM.
                ch.pump();
                Thread.sleep(10);
            }
        }
    }

    /** @return null once every sequence was read correctly, else what went wrong */
    static String read(AeronUdpChannel ch, long count) {
        for (long s = 0; s < count; s++) {
            Object value;
            while ((value = ch.poll(0, s)) == Channel.NOT_READY) {
                if (!ch.awaitPublished(0, s, WAIT_NANOS)) {
                    return "timeout: the reader waited for sequence " + s + "; lost peer: " + ch.lossReason();
                }
            }
            Object expected = MixedValues.of(s);
            try {
                if (!MixedValues.equal(expected, value)) {
                    return "reader at " + s + ": expected " + MixedValues.describe(expected) + ", got "
                            + MixedValues.describe(value);
                }
            } finally {
                MixedValues.dispose(expected);
            }
            ch.release(0, s);
        }
        return null;
    }

    /** @return null once every sequence was offered and released, else what went wrong */
    static String write(AeronUdpChannel ch, long count) {
        for (long s = 0; s < count; s++) {
            Object value = MixedValues.of(s);
            try {
                while (!ch.offer(s, value)) {
                    if (!ch.awaitReleased(s, WAIT_NANOS)) {
                        return "timeout: the writer waited to offer sequence " + s + "; lost peer: " + ch.lossReason();
                    }
                }
            } finally {
                MixedValues.dispose(value);
            }
        }
        if (!ch.awaitReleased(count - 1 + ch.spec().slots(), WAIT_NANOS)) {
            return "timeout: the reader did not release the last sequence; lost peer: " + ch.lossReason();
        }
        return null;
    }
}
