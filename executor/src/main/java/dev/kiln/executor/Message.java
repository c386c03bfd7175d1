package dev.kiln.executor;

import io.aeron.Publication;
import org.agrona.DirectBuffer;
import org.agrona.ExpandableArrayBuffer;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.locks.LockSupport;

/**
 * One control-plane message between the driver and a worker JVM: a type, a correlation id and a
 * body of ints, longs, strings and byte arrays, in an Agrona buffer. Written with the
 * {@code put} methods, read back in the same order with the {@code get} methods. The control
 * plane is not a hot path; the data path is the graph's channels.
 *
 * <p>Not thread-safe.
 */
public final class Message {

    /** Worker to driver, once connected: body {@code pid}. */
    public static final int READY = 1;
    /** Worker to driver: the answer to a request, with the request's correlation id; body {@code status, ...}. */
    public static final int REPLY = 2;
    /** Worker to driver: a graph loop died; body {@code graph, actor, cause}. */
    public static final int LOOP_DIED = 3;
    /** Worker to driver: a graph lost a peer in another JVM, its actors live on; body {@code graph, why}. */
    public static final int GRAPH_FAILED = 4;
    /** Driver to worker: body {@code count, class names}. */
    public static final int REGISTER = 10;
    /** Driver to worker: body {@code actor id, name, GPU (or -1), factory}. */
    public static final int CREATE_ACTOR = 11;
    /** Driver to worker: body {@code actor id, call number, method, arity, arguments}. */
    public static final int CALL = 12;
    /**
     * Driver to worker: body {@code graph id, graph name, plan, options, UDP layout, peers, communicator ids, NCCL join
     * timeout}.
     */
    public static final int PREPARE = 13;
    /** Driver to worker: body {@code graph id}. */
    public static final int START = 14;
    /** Driver to worker: body {@code graph id, abort (1 when a peer of the graph died, else 0)}. */
    public static final int STOP_GRAPH = 15;
    /** Driver to worker: no body; the worker stops its actors and exits. */
    public static final int SHUTDOWN = 16;
    /** Driver to worker: body {@code actor id}; the actor's thread ends, later calls to it fail. */
    public static final int STOP_ACTOR = 17;
    /** Joined worker to driver: body {@code why}; it stopped its actors and leaves (after a SHUTDOWN, or closed). */
    public static final int LEFT = 18;
    /** Driver to worker: no body; the reply carries a new NCCL communicator id made in the worker's process. */
    public static final int COMMUNICATOR_ID = 19;

    /**
     * Joining worker to driver, on the driver's join stream: body {@code protocol version, worker name,
     * worker endpoint, pid, shared-memory directory}.
     */
    public static final int HELLO = 30;
    /** Driver to joining worker: body {@code challenge (the driver's nonce)}. */
    public static final int CHALLENGE = 31;
    /** Joining worker to driver: body {@code the encoded JoinHandshake.Response}. */
    public static final int RESPONSE = 32;
    /**
     * Driver to joining worker: body {@code proof, count, class names to register}; the worker checks the
     * proof, registers the classes and answers {@link #READY} (admitted) or {@link #JOIN_FAILED}.
     */
    public static final int ACCEPT = 33;
    /** Driver to joining worker: body {@code why}; the join failed. */
    public static final int REFUSED = 34;
    /** Joining worker to driver: body {@code why}; it gives up joining (a bad proof, a class it cannot load). */
    public static final int JOIN_FAILED = 35;

    /** Reply status: done; the body holds the result, if any. */
    public static final int OK = 0;
    /** Reply status: refused or failed; body {@code message}. */
    public static final int FAILED = 1;
    /** Reply status: the user's method threw; body {@code exception class, message, stack trace}. */
    public static final int TASK_ERROR = 2;
    /** Reply status: the actor is dead; body {@code message}. */
    public static final int DIED = 3;

    private static final int HEADER = Integer.BYTES + Long.BYTES;

    private final ExpandableArrayBuffer buffer;
    private int position;
    private int limit;

    private Message(ExpandableArrayBuffer buffer, int position, int limit) {
        this.buffer = buffer;
        this.position = position;
        this.limit = limit;
    }

    /**
     * Starts a message to write.
     *
     * @param type        the message type
     * @param correlation the request's id (0 for messages that need no answer)
     * @return the message
     */
    public static Message write(int type, long correlation) {
        Message m = new Message(new ExpandableArrayBuffer(128), 0, 0);
        m.putInt(type).putLong(correlation);
        return m;
    }

    /**
     * Copies a received message to read it.
     *
     * @param source the buffer
     * @param offset where the message starts
     * @param length its length
     * @return the message, positioned at its body
     * @throws IllegalArgumentException if it is shorter than a header
     */
    public static Message read(DirectBuffer source, int offset, int length) {
        if (length < HEADER) {
            throw new IllegalArgumentException("a control message of " + length + " bytes has no header");
        }
        ExpandableArrayBuffer copy = new ExpandableArrayBuffer(length);
        copy.putBytes(0, source, offset, length);
        return new Message(copy, HEADER, length);
    }

    /** @return the message type */
    public int type() {
        return buffer.getInt(0);
    }

    /** @return the correlation id */
    public long correlation() {
        return buffer.getLong(Integer.BYTES);
    }

    /** @return the buffer holding a written message, valid for {@link #length()} bytes */
    public DirectBuffer buffer() {
        return buffer;
    }

    /** @return the bytes written */
    public int length() {
        return position;
    }

    /**
     * @param v an int
     * @return this
     */
    public Message putInt(int v) {
        buffer.putInt(position, v);
        position += Integer.BYTES;
        return this;
    }

    /**
     * @param v a long
     * @return this
     */
    public Message putLong(long v) {
        buffer.putLong(position, v);
        position += Long.BYTES;
        return this;
    }

    /**
     * @param v a string, or null
     * @return this
     */
    public Message putString(String v) {
        return putBytes(v == null ? null : v.getBytes(StandardCharsets.UTF_8));
    }

    /**
     * @param v bytes, or null
     * @return this
     */
    public Message putBytes(byte[] v) {
        if (v == null) {
            return putInt(-1);
        }
        putInt(v.length);
        buffer.putBytes(position, v);
        position += v.length;
        return this;
    }

    /**
     * Sends the message, retrying while the publication is back-pressured or not yet connected.
     *
     * @param publication  the control stream (thread-safe for concurrent senders)
     * @param timeoutNanos how long to keep trying
     * @return null when sent, else why not (the peer is gone, the message is too large, or the timeout passed)
     */
    public String sendTo(Publication publication, long timeoutNanos) {
        if (position > publication.maxMessageLength()) {
            return "a control message of " + position + " bytes exceeds the limit of " + publication.maxMessageLength()
                    + " bytes (dynamic calls to worker actors carry at most that; pass larger values through a "
                    + "compiled graph, whose shared-memory channels have no such limit)";
        }
        long deadline = System.nanoTime() + timeoutNanos;
        long result;
        while ((result = publication.offer(buffer, 0, position)) < 0) {
            if (result == Publication.CLOSED || result == Publication.MAX_POSITION_EXCEEDED) {
                return "the control stream is closed";
            }
            if (System.nanoTime() - deadline > 0) {
                return result == Publication.NOT_CONNECTED ? "the peer is not connected" : "the control stream stayed "
                        + "back-pressured for " + timeoutNanos / 1_000_000 + " ms";
            }
            LockSupport.parkNanos(20_000);
        }
        return null;
    }

    /** @return the next int */
    public int getInt() {
        check(Integer.BYTES);
        int v = buffer.getInt(position);
        position += Integer.BYTES;
        return v;
    }

    /** @return the next long */
    public long getLong() {
        check(Long.BYTES);
        long v = buffer.getLong(position);
        position += Long.BYTES;
        return v;
    }

    /** @return the next string, or null */
    public String getString() {
        byte[] b = getBytes();
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    /** @return the next byte array, or null */
    public byte[] getBytes() {
        int n = getInt();
        if (n < 0) {
            return null;
        }
        check(n);
        byte[] v = new byte[n];
        buffer.getBytes(position, v);
        position += n;
        return v;
    }

    private void check(int bytes) {
        // Not position + bytes: a length near Integer.MAX_VALUE would wrap around, pass, and size an allocation.
        if (bytes > limit - position) {
            throw new IllegalArgumentException("control message of type " + type() + " ends at " + limit
                    + ", reading " + bytes + " bytes at " + position);
        }
    }
}
