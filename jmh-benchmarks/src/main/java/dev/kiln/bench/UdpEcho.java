package dev.kiln.bench;

import io.aeron.Aeron;
import io.aeron.ChannelUriStringBuilder;
import io.aeron.ExclusivePublication;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import io.aeron.logbuffer.FragmentHandler;
import org.agrona.CloseHelper;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.util.concurrent.TimeUnit;

/**
 * The cross-host floor: raw Aeron UDP over loopback between two "hosts" in this JVM, each with its
 * own embedded media driver (own directory under the given folder) and its own client. The media
 * drivers are configured as Kiln's are for cross-host traffic (shared threading mode, a
 * {@code BackoffIdleStrategy(16, 16, 1 us, 100 us)}, sparse term files), and the data publication
 * gets the MTU and term length a Kiln channel would.
 *
 * <p>Host a (the calling thread) sends messages of {@code messageBytes} bytes to host b on one
 * exclusive publication, in chunks of the publication's {@code maxPayloadLength()} (one Aeron frame
 * each, never fragmented by Aeron). Host b (a thread started here, "udp-echo") copies every chunk
 * into a preallocated buffer at its offset, as a receiver of a tensor must, and when the message is
 * complete answers with a 4-byte ack: the message's last int plus one. So a 4-byte message is a
 * ping-pong round trip, and a large one a one-way transfer with an ack per message. One message in
 * flight at a time; every thread waits with a {@code BackoffIdleStrategy} whose parks stop growing at
 * 100 us ({@link #backoff}).
 *
 * <p>{@link #exchange} and {@link #close} belong to one thread.
 */
final class UdpEcho implements AutoCloseable {

    /** Host a to host b: the messages. */
    static final int DATA_STREAM = 2001;
    /** Host b to host a: the acks. */
    static final int ACK_STREAM = 2002;
    /** Chunks taken per poll. */
    private static final int FRAGMENTS = 64;
    /** The ack publication's term, the smallest Aeron allows, as Kiln's release streams use. */
    private static final int ACK_TERM_LENGTH = 64 * 1024;
    private static final long CONNECT_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(60);
    private static final long ACK_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(60);

    private final int messageBytes;
    private final MediaDriver driverA;
    private final MediaDriver driverB;
    private final Aeron clientA;
    private final Aeron clientB;
    private final ExclusivePublication data;
    private final Subscription acks;
    private final Thread echo;
    private final UnsafeBuffer message;
    private final IdleStrategy idle = backoff();
    private final FragmentHandler onAck = (buffer, offset, length, header) -> acked(buffer.getInt(offset));
    private int ack;
    private boolean acked;
    private volatile boolean stopped;
    private volatile Throwable echoFailure;

    /**
     * Starts both media drivers, both clients and the echo thread, and waits until both streams connect.
     *
     * @param dir          where the two media drivers' directories go; it must exist
     * @param mtu          the data publication's MTU in bytes
     * @param termLength   the data publication's term length in bytes
     * @param messageBytes bytes per message, at least 4
     * @throws IllegalStateException if the streams do not connect within 60 s
     */
    UdpEcho(java.nio.file.Path dir, int mtu, int termLength, int messageBytes) {
        if (messageBytes < Integer.BYTES) {
            throw new IllegalArgumentException("messageBytes must be >= 4, got " + messageBytes);
        }
        this.messageBytes = messageBytes;
        this.message = new UnsafeBuffer(ByteBuffer.allocateDirect(messageBytes));
        for (int i = 0; i < messageBytes; i += 4096) {
            message.putByte(i, (byte) 7); // touch every page before the measurement
        }
        String endpointA = "127.0.0.1:" + freePort();
        String endpointB = "127.0.0.1:" + freePort();
        MediaDriver a = null;
        MediaDriver b = null;
        Aeron ca = null;
        Aeron cb = null;
        Thread t = null;
        try {
            a = launch(dir.resolve("aeron-a"));
            b = launch(dir.resolve("aeron-b"));
            ca = Aeron.connect(new Aeron.Context().aeronDirectoryName(a.aeronDirectoryName()));
            cb = Aeron.connect(new Aeron.Context().aeronDirectoryName(b.aeronDirectoryName()));
            Subscription in = cb.addSubscription(udp(endpointB), DATA_STREAM);
            ExclusivePublication out = cb.addExclusivePublication(new ChannelUriStringBuilder().media("udp")
                    .endpoint(endpointA).termLength(ACK_TERM_LENGTH).build(), ACK_STREAM);
            this.acks = ca.addSubscription(udp(endpointA), ACK_STREAM);
            this.data = ca.addExclusivePublication(new ChannelUriStringBuilder().media("udp").endpoint(endpointB)
                    .mtu(mtu).termLength(termLength).build(), DATA_STREAM);
            t = new Thread(() -> echo(in, out), "udp-echo");
            t.setDaemon(true);
            t.start();
            long deadline = System.nanoTime() + CONNECT_TIMEOUT_NS;
            while (!data.isConnected() || !acks.isConnected() || !out.isConnected()) {
                if (System.nanoTime() - deadline > 0) {
                    throw new IllegalStateException("the Aeron UDP streams between " + endpointA + " and " + endpointB
                            + " did not connect within 60 s");
                }
                idle.idle();
            }
            idle.reset();
        } catch (RuntimeException e) {
            stopped = true;
            join(t);
            CloseHelper.quietCloseAll(ca, cb, a, b);
            throw e;
        }
        this.driverA = a;
        this.driverB = b;
        this.clientA = ca;
        this.clientB = cb;
        this.echo = t;
    }

    static MediaDriver launch(java.nio.file.Path dir) {
        return MediaDriver.launchEmbedded(new MediaDriver.Context()
                .aeronDirectoryName(dir.toString())
                .dirDeleteOnStart(true)
                .dirDeleteOnShutdown(true)
                .threadingMode(ThreadingMode.SHARED)
                .sharedIdleStrategy(new BackoffIdleStrategy(16, 16, 1_000, 100_000))
                .termBufferSparseFile(true));
    }

    /**
     * Spins, yields, then parks from 1 us doubling up to 100 us, as the media drivers here do. Parks of up to
     * 1 ms (Aeron's default {@code BackoffIdleStrategy}) made this floor slower than Kiln, whose waits on a UDP
     * channel restart their parks at 1 us on every idle call.
     */
    private static IdleStrategy backoff() {
        return new BackoffIdleStrategy(24, 8, 1_000, 100_000);
    }

    private static String udp(String endpoint) {
        return new ChannelUriStringBuilder().media("udp").endpoint(endpoint).build();
    }

    /** A UDP port on loopback that was free a moment ago. */
    static int freePort() {
        try (DatagramSocket s = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException("no free UDP port on loopback", e);
        }
    }

    /** Host b: reassembles each message into {@code into} and acks it, until {@link #close}. */
    private void echo(Subscription in, ExclusivePublication out) {
        UnsafeBuffer into = new UnsafeBuffer(ByteBuffer.allocateDirect(messageBytes));
        UnsafeBuffer ack = new UnsafeBuffer(ByteBuffer.allocateDirect(Integer.BYTES));
        IdleStrategy waiting = backoff();
        int[] received = {0};
        boolean[] complete = {false};
        FragmentHandler reassemble = (buffer, offset, length, header) -> {
            into.putBytes(received[0], buffer, offset, length);
            received[0] += length;
            if (received[0] == messageBytes) {
                received[0] = 0;
                complete[0] = true;
            }
        };
        try {
            while (!stopped) {
                int work = in.poll(reassemble, FRAGMENTS);
                if (complete[0]) {
                    complete[0] = false;
                    ack.putInt(0, into.getInt(messageBytes - Integer.BYTES) + 1);
                    long result;
                    while ((result = out.offer(ack, 0, Integer.BYTES)) < 0) {
                        if (result == Publication.CLOSED || result == Publication.MAX_POSITION_EXCEEDED || stopped) {
                            throw new IllegalStateException("ack publication: offer returned " + result);
                        }
                        waiting.idle();
                    }
                }
                waiting.idle(work);
            }
        } catch (Throwable e) {
            if (!stopped) {
                echoFailure = e;
            }
        }
    }

    /**
     * Sends one message whose last int is {@code stamp} and waits for its ack.
     *
     * @param stamp written into the message's last 4 bytes
     * @return the ack: {@code stamp + 1} if the message arrived whole and in order
     * @throws IllegalStateException if the publication closed, or no ack came within 60 s
     */
    int exchange(int stamp) {
        message.putInt(messageBytes - Integer.BYTES, stamp);
        int chunk = data.maxPayloadLength();
        for (int offset = 0; offset < messageBytes; ) {
            int length = Math.min(chunk, messageBytes - offset);
            long result = data.offer(message, offset, length);
            if (result > 0) {
                offset += length;
                idle.reset();
            } else if (result == Publication.CLOSED || result == Publication.MAX_POSITION_EXCEEDED) {
                throw new IllegalStateException("data publication: offer returned " + result);
            } else {
                idle.idle(); // BACK_PRESSURED, ADMIN_ACTION, NOT_CONNECTED: offer the same chunk again
            }
        }
        acked = false;
        long deadline = 0;
        while (!acked) {
            int work = acks.poll(onAck, 1);
            if (work == 0) {
                if (deadline == 0) {
                    deadline = System.nanoTime() + ACK_TIMEOUT_NS;
                } else if (System.nanoTime() - deadline > 0 || echoFailure != null) {
                    throw new IllegalStateException("no ack within 60 s", echoFailure);
                }
            }
            idle.idle(work);
        }
        idle.reset();
        return ack;
    }

    private void acked(int value) {
        ack = value;
        acked = true;
    }

    /** Stops the echo thread, closes both clients and both media drivers (which delete their directories). */
    @Override
    public void close() {
        stopped = true;
        join(echo);
        CloseHelper.quietCloseAll(clientA, clientB, driverA, driverB);
    }

    private static void join(Thread t) {
        if (t == null) {
            return;
        }
        try {
            t.join(TimeUnit.SECONDS.toMillis(10));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Deletes {@code dir} and everything under it, as far as it can. */
    static void deleteTree(java.nio.file.Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (var paths = Files.walk(dir)) {
            paths.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            System.err.println("cannot delete " + dir + ": " + e);
        }
    }
}
