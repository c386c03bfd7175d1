package dev.kiln.executor;

import dev.kiln.transport.JoinHandshake;
import dev.kiln.transport.Sbe;
import io.aeron.Publication;
import org.agrona.DirectBuffer;
import org.agrona.ExpandableArrayBuffer;
import org.agrona.concurrent.UnsafeBuffer;

import javax.crypto.Mac;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * One joined worker's authenticated control stream, one end of it: the messages this side sends and the
 * checks of those it receives, with the keys the join derived ({@link JoinHandshake.Keys}).
 *
 * <p>On the wire a frame is an SBE message of {@code kiln-control.xml} whose first field is its sequence
 * number, then a MAC: the first {@value #MAC_BYTES} bytes of HMAC-SHA256 over every byte before it, with the
 * sender's direction key. Sequence numbers start at 1 on each link and direction and grow by one per frame. A
 * receiver drops, and counts, a frame with a wrong MAC (forged or mutated), one whose sequence is not above the
 * last it accepted (replayed), and one that does not decode (malformed). A message larger than one frame
 * ({@code maxMessageLength} of the publication, less the framing) travels as consecutive {@code Chunk} frames,
 * each authenticated, reassembled in order up to the link's message limit.
 *
 * <p>Thread-safe for senders (one lock orders sequence numbers with offers); {@link #receive} is for one
 * receiving thread.
 */
public final class ControlLink {

    /** Bytes of the MAC after each frame: HMAC-SHA256 truncated to 128 bits (NIST SP 800-107 allows it). */
    public static final int MAC_BYTES = 16;
    /** Room for a chunk frame's header, block and length. */
    private static final int CHUNK_OVERHEAD = Sbe.HEADER_LENGTH + 24 + 4 + MAC_BYTES;
    /** Largest frame this side makes, whatever the publication allows: bounds what a receiver buffers per frame. */
    static final int MAX_FRAME = 4 << 20;

    private final Publication publication;
    private final Mac sendMac;
    private final Mac receiveMac;
    private final ControlCounters counters;
    private final PeerWarnings warnings;
    private final String peer;
    private final ReentrantLock sending = new ReentrantLock();
    private final ExpandableArrayBuffer message = new ExpandableArrayBuffer(1024);
    private final ExpandableArrayBuffer frame = new ExpandableArrayBuffer(1024);
    private final byte[] macBytes = new byte[32];
    private volatile long maxMessageBytes;
    private long sendSequence;
    private long lastAccepted;
    private byte[] assembling;
    private int assembled;
    private volatile long lastSentNs = System.nanoTime();
    private volatile long lastHeardNs = System.nanoTime();

    /**
     * @param publication     the stream to the peer
     * @param keys            this side's keys of this link
     * @param maxMessageBytes the largest message this side accepts, reassembled (chunks of a larger one are dropped)
     * @param counters        where drops are counted
     * @param warnings        where drops are reported
     * @param peer            the peer, for messages
     */
    public ControlLink(Publication publication, JoinHandshake.Keys keys, long maxMessageBytes, ControlCounters counters,
                       PeerWarnings warnings, String peer) {
        this.publication = publication;
        this.sendMac = dev.kiln.transport.Hkdf.hmac(keys.send());
        this.receiveMac = dev.kiln.transport.Hkdf.hmac(keys.receive());
        this.maxMessageBytes = maxMessageBytes;
        this.counters = counters;
        this.warnings = warnings;
        this.peer = peer;
    }

    /** @return the stream to the peer */
    public Publication publication() {
        return publication;
    }

    /** @param bytes the largest message this side accepts from now on (the driver's limit, once known) */
    void maxMessageBytes(long bytes) {
        this.maxMessageBytes = bytes;
    }

    /** @return when this side last sent a frame, {@link System#nanoTime} */
    public long lastSentNs() {
        return lastSentNs;
    }

    /** @return when this side last accepted a frame from the peer, {@link System#nanoTime} */
    public long lastHeardNs() {
        return lastHeardNs;
    }

    /**
     * Moves the time of the last accepted frame forward, as if the peer had been heard later: after this process
     * itself was paused (a freeze, a long GC), the peer's silence during the pause is not the peer's.
     *
     * @param ns how long this process did not run
     */
    void forgive(long ns) {
        lastHeardNs = Math.min(lastHeardNs + ns, System.nanoTime()); // never heard "in the future"
    }

    /**
     * Sends a message, in chunks if it is larger than one frame, retrying while the stream is back-pressured or
     * not yet connected.
     *
     * @param m         the message
     * @param timeoutNs how long to keep trying for each frame
     * @return null when sent, else why not (the peer is gone, the stream closed, the timeout passed)
     */
    public String send(Message.Authenticated m, long timeoutNs) {
        sending.lock();
        try {
            int length = ControlCodec.encode(m, 0, message);
            if (length > maxMessageBytes + (1 << 20)) {
                // The peer would drop its chunks (see assemble): fail now rather than leave a reply never to come.
                return "a " + m.getClass().getSimpleName() + " message of " + length + " bytes, more than the "
                        + (maxMessageBytes + (1 << 20)) + " a control message may take (KilnOptions.maxCallBytes, plus"
                        + " 1 MiB for the rest of the message)";
            }
            int maxFrame = Math.min(publication.maxMessageLength(), MAX_FRAME);
            if (length + MAC_BYTES <= maxFrame) {
                message.putLong(Sbe.HEADER_LENGTH, ++sendSequence, ByteOrder.LITTLE_ENDIAN);
                return offer(message, length, timeoutNs);
            }
            int part = maxFrame - CHUNK_OVERHEAD;
            for (int at = 0; at < length; at += part) {
                int n = Math.min(part, length - at);
                int frameLength = ControlCodec.encodeChunk(++sendSequence, length, at, message, n, frame);
                String failure = offer(frame, frameLength, timeoutNs);
                if (failure != null) {
                    return failure;
                }
            }
            return null;
        } finally {
            sending.unlock();
        }
    }

    /**
     * Sends a small message at once if nobody else is sending and the stream takes it without waiting; for
     * heartbeats, which a busy link does not need.
     *
     * @param m the message, one frame
     * @return whether it was sent
     */
    public boolean trySend(Message.Authenticated m) {
        if (!sending.tryLock()) {
            return false;
        }
        try {
            int length = ControlCodec.encode(m, ++sendSequence, message);
            return offer(message, length, 0) == null;
        } finally {
            sending.unlock();
        }
    }

    /** Appends the MAC and offers the frame; the lock is held. */
    private String offer(ExpandableArrayBuffer buffer, int length, long timeoutNs) {
        sendMac.update(buffer.byteArray(), 0, length);
        try {
            sendMac.doFinal(macBytes, 0);
        } catch (javax.crypto.ShortBufferException e) {
            throw new IllegalStateException(e);
        }
        buffer.putBytes(length, macBytes, 0, MAC_BYTES);
        int frameLength = length + MAC_BYTES;
        long deadline = System.nanoTime() + timeoutNs;
        long result;
        while ((result = publication.offer(buffer, 0, frameLength)) < 0) {
            if (result == Publication.CLOSED || result == Publication.MAX_POSITION_EXCEEDED) {
                return "the control stream to " + peer + " is closed";
            }
            if (System.nanoTime() - deadline > 0) {
                return result == Publication.NOT_CONNECTED ? peer + " is not connected" : "the control stream to "
                        + peer + " stayed back-pressured for " + timeoutNs / 1_000_000 + " ms";
            }
            LockSupport.parkNanos(20_000);
        }
        lastSentNs = System.nanoTime();
        return null;
    }

    /**
     * Checks and decodes one frame from the peer; the receiving thread only.
     *
     * @param buffer holds the frame
     * @param offset where it starts
     * @param length its length, MAC included
     * @return the message, or null when the frame was dropped (and counted) or is a chunk of a message not yet
     *         complete
     */
    public Message receive(DirectBuffer buffer, int offset, int length) {
        if (length < Sbe.HEADER_LENGTH + 8 + MAC_BYTES) {
            drop(counters::malformed, "a control frame of " + length + " bytes, too short for a sequence and a MAC");
            return null;
        }
        byte[] bytes = new byte[length];
        buffer.getBytes(offset, bytes);
        int body = length - MAC_BYTES;
        UnsafeBuffer frameBuffer = new UnsafeBuffer(bytes, 0, body);
        int template;
        try {
            template = Sbe.templateId(frameBuffer, 0, body);
        } catch (IllegalArgumentException e) {
            drop(counters::malformed, "a malformed control frame (" + e.getMessage() + ")");
            return null;
        }
        if (!ControlCodec.authenticated(template)) {
            drop(counters::forged, "an unauthenticated control message (template " + template + ") after the join");
            return null;
        }
        receiveMac.update(bytes, 0, body);
        byte[] expected = receiveMac.doFinal();
        if (!MessageDigest.isEqual(java.util.Arrays.copyOf(expected, MAC_BYTES),
                java.util.Arrays.copyOfRange(bytes, body, length))) {
            drop(counters::forged, "a control message with a wrong MAC (forged or altered on the way)");
            return null;
        }
        long sequence = ControlCodec.sequence(frameBuffer);
        if (sequence <= lastAccepted) {
            drop(counters::replayed, "a replayed control message (sequence " + sequence + ", last accepted "
                    + lastAccepted + ")");
            return null;
        }
        lastAccepted = sequence;
        lastHeardNs = System.nanoTime();
        try {
            if (template == ControlCodec.chunkTemplate()) {
                return assemble(ControlCodec.decodeChunk(frameBuffer, body));
            }
            return ControlCodec.decode(frameBuffer, body);
        } catch (IllegalArgumentException e) {
            assembling = null;
            drop(counters::malformed, "a malformed control message (" + e.getMessage() + ")");
            return null;
        }
    }

    private Message assemble(ControlCodec.Chunk chunk) {
        if (chunk.offset() == 0) {
            if (chunk.totalLength() > maxMessageBytes + (1 << 20)) {
                assembling = null;
                throw new IllegalArgumentException("a message of " + chunk.totalLength() + " bytes in chunks, more than"
                        + " the " + maxMessageBytes + " this side accepts (KilnOptions.maxCallBytes)");
            }
            assembling = new byte[(int) chunk.totalLength()];
            assembled = 0;
        } else if (assembling == null || chunk.offset() != assembled || chunk.totalLength() != assembling.length) {
            assembling = null;
            throw new IllegalArgumentException("a chunk at " + chunk.offset() + " of a message of "
                    + chunk.totalLength() + " bytes, out of order");
        }
        System.arraycopy(chunk.bytes(), 0, assembling, assembled, chunk.bytes().length);
        assembled += chunk.bytes().length;
        if (assembled < assembling.length) {
            return null;
        }
        byte[] whole = assembling;
        assembling = null;
        UnsafeBuffer b = new UnsafeBuffer(whole);
        int template = Sbe.templateId(b, 0, whole.length);
        if (!ControlCodec.authenticated(template) || template == ControlCodec.chunkTemplate()) {
            throw new IllegalArgumentException("chunks that make template " + template + ", not a control message");
        }
        return ControlCodec.decode(b, whole.length);
    }

    private void drop(Runnable count, String what) {
        count.run();
        warnings.warn(() -> "dropped " + what + " from " + peer);
    }

    @Override
    public String toString() {
        return "ControlLink(" + peer + ")";
    }
}
