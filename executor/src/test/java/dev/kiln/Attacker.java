package dev.kiln;

import dev.kiln.executor.ControlCodec;
import dev.kiln.executor.ControlLink;
import dev.kiln.executor.ControlPlane;
import dev.kiln.executor.Message;
import io.aeron.Aeron;
import io.aeron.ChannelUriStringBuilder;
import io.aeron.ExclusivePublication;
import io.aeron.Publication;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import org.agrona.concurrent.UnsafeBuffer;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.LockSupport;

/**
 * A hostile process of the same user on loopback: it sends well-formed control messages of Kiln's protocol
 * without knowing any secret, over Aeron (its own media driver, or a client of the driver's over IPC) or as
 * hand-made Aeron frames from any loopback address, and replays what it captured.
 */
final class Attacker implements AutoCloseable {
    final MediaDriver driver;
    final Aeron aeron;
    final List<Publication> publications = new ArrayList<>();

    /** With a media driver of its own, to send UDP. */
    Attacker(Path dir) {
        driver = MediaDriver.launchEmbedded(new MediaDriver.Context().aeronDirectoryName(dir.toString())
                .dirDeleteOnStart(true).dirDeleteOnShutdown(true).threadingMode(ThreadingMode.SHARED)
                .termBufferSparseFile(true));
        aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(driver.aeronDirectoryName()));
    }

    /** A client of someone else's media driver (IPC). */
    Attacker(String aeronDirectory) {
        driver = null;
        aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(aeronDirectory));
    }

    ExclusivePublication udp(String endpoint, String fromInterface, int stream) {
        ChannelUriStringBuilder b = new ChannelUriStringBuilder().media("udp").endpoint(endpoint);
        if (fromInterface != null) {
            b.networkInterface(fromInterface);
        }
        ExclusivePublication p = aeron.addExclusivePublication(b.build(), stream);
        publications.add(p);
        return p;
    }

    Publication ipc(int stream) {
        Publication p = aeron.addPublication("aeron:ipc", stream);
        publications.add(p);
        return p;
    }

    private static final java.security.SecureRandom RANDOM = new java.security.SecureRandom();

    static byte[] random(int n) {
        byte[] b = new byte[n];
        RANDOM.nextBytes(b);
        return b;
    }

    static byte[] hello(String name, String endpoint) {
        return ControlCodec.encode(new Message.Hello(ControlPlane.PROTOCOL_VERSION, 4242, random(32), name, endpoint,
                "/dev/shm"));
    }

    static byte[] challenge(byte[] nonce) {
        return ControlCodec.encode(new Message.Challenge(nonce, random(32)));
    }

    /** An authenticated message with a made-up sequence number and MAC, as someone without the keys sends it. */
    static byte[] forged(Message.Authenticated m, long sequence) {
        org.agrona.ExpandableArrayBuffer out = new org.agrona.ExpandableArrayBuffer(256);
        int length = ControlCodec.encode(m, sequence, out);
        byte[] frame = new byte[length + ControlLink.MAC_BYTES];
        out.getBytes(0, frame, 0, length);
        System.arraycopy(random(ControlLink.MAC_BYTES), 0, frame, length, ControlLink.MAC_BYTES);
        return frame;
    }

    static byte[] shutdown() {
        return forged(new Message.Shutdown(), 1L << 40);
    }

    /** Offers until sent or the timeout passes. */
    static boolean offer(Publication p, byte[] frame, long timeoutMs) {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000;
        UnsafeBuffer b = new UnsafeBuffer(frame);
        while (p.offer(b, 0, frame.length) < 0) {
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            LockSupport.parkNanos(1_000_000);
        }
        return true;
    }

    /**
     * Aeron frames by hand from a plain UDP socket, so that they can come from any loopback address:
     * a SETUP that makes the receiver create an image of this session, then unfragmented DATA frames.
     */
    static final class RawSession implements AutoCloseable {
        private final java.net.DatagramSocket socket;
        private final java.net.InetSocketAddress to;
        private final int session;
        private final int stream;
        private int termOffset;

        RawSession(String from, String toEndpoint, int session, int stream) throws java.io.IOException {
            this.socket = new java.net.DatagramSocket(new java.net.InetSocketAddress(
                    java.net.InetAddress.getByName(from), 0));
            int colon = toEndpoint.lastIndexOf(':');
            this.to = new java.net.InetSocketAddress(java.net.InetAddress.getByName(toEndpoint.substring(0, colon)),
                    Integer.parseInt(toEndpoint.substring(colon + 1)));
            this.session = session;
            this.stream = stream;
            setup();
        }

        private void setup() throws java.io.IOException {
            UnsafeBuffer b = new UnsafeBuffer(new byte[io.aeron.protocol.SetupFlyweight.HEADER_LENGTH]);
            io.aeron.protocol.SetupFlyweight f = new io.aeron.protocol.SetupFlyweight(b);
            f.frameLength(io.aeron.protocol.SetupFlyweight.HEADER_LENGTH);
            f.version(io.aeron.protocol.HeaderFlyweight.CURRENT_VERSION);
            f.flags((short) 0);
            f.headerType(io.aeron.protocol.HeaderFlyweight.HDR_TYPE_SETUP);
            f.termOffset(0).sessionId(session).streamId(stream).initialTermId(0).activeTermId(0)
                    .termLength(64 * 1024).mtuLength(1408).ttl(0);
            socket.send(new java.net.DatagramPacket(b.byteArray(), b.capacity(), to));
        }

        /** Sends one message in one frame (it must fit an MTU). */
        void send(byte[] payload) throws java.io.IOException {
            if (termOffset == 0) {
                setup();
                LockSupport.parkNanos(100_000_000); // the receiver creates the image on the SETUP
            }
            int length = io.aeron.protocol.DataHeaderFlyweight.HEADER_LENGTH + payload.length;
            UnsafeBuffer b = new UnsafeBuffer(new byte[length]);
            io.aeron.protocol.DataHeaderFlyweight f = new io.aeron.protocol.DataHeaderFlyweight(b);
            f.frameLength(length);
            f.version(io.aeron.protocol.HeaderFlyweight.CURRENT_VERSION);
            f.flags(io.aeron.protocol.DataHeaderFlyweight.BEGIN_AND_END_FLAGS);
            f.headerType(io.aeron.protocol.HeaderFlyweight.HDR_TYPE_DATA);
            f.termOffset(termOffset).sessionId(session).streamId(stream).termId(0);
            b.putBytes(io.aeron.protocol.DataHeaderFlyweight.HEADER_LENGTH, payload);
            socket.send(new java.net.DatagramPacket(b.byteArray(), length, to));
            termOffset += org.agrona.BitUtil.align(length, 32);
        }

        @Override
        public void close() {
            socket.close();
        }
    }

    /** @return the next {@code count} frames on a subscription (a tap, or a spy), waiting up to 20 s */
    static List<byte[]> capture(io.aeron.Subscription s, int count) {
        List<byte[]> frames = new ArrayList<>();
        io.aeron.FragmentAssembler assembler = new io.aeron.FragmentAssembler((buffer, offset, length, header) -> {
            byte[] frame = new byte[length];
            buffer.getBytes(offset, frame);
            frames.add(frame);
        });
        KilnTestSupport.awaitTrue("captured control messages", java.time.Duration.ofSeconds(20), () -> {
            s.poll(assembler, 100);
            return frames.size() >= count;
        });
        return frames;
    }

    @Override
    public void close() {
        aeron.close();
        if (driver != null) {
            driver.close();
        }
    }
}
