package dev.kiln.executor;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.executor.wire.LambdaCodec;
import dev.kiln.executor.wire.PlanCodec;
import dev.kiln.executor.wire.WireIn;
import dev.kiln.executor.wire.WireOut;
import dev.kiln.transport.AeronUdpChannel;
import dev.kiln.transport.ValueCodec;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * What the control plane sends as bytes: values (through the {@link ValueCodec}), lambdas
 * (actor factories and method references) and plans. Never Java deserialization. Thread-safe.
 */
public final class Codecs {

    /** The most NCCL communicators a plan may have: one per actor would already be more than any plan makes. */
    private static final int MAX_COMMUNICATORS = 4096;
    /** The longest graph data key accepted: the driver makes 32 bytes. */
    private static final int MAX_KEY_BYTES = 64;

    private Codecs() {
    }

    /**
     * @param value a value the codec can encode
     * @param codec the runtime's codec
     * @return its encoding
     * @throws IllegalArgumentException if the codec cannot encode it (an unregistered class)
     */
    public static byte[] valueBytes(Object value, ValueCodec codec) {
        WireOut out = new WireOut();
        out.writeValue(codec, value);
        return out.toByteArray();
    }

    /**
     * @param bytes an encoding from {@link #valueBytes}
     * @param codec the runtime's codec
     * @return the value, owning its memory (tensors are copied out of {@code bytes})
     */
    public static Object value(byte[] bytes, ValueCodec codec) {
        WireIn in = new WireIn(bytes);
        Object value = in.readValue(codec);
        in.expectEnd();
        return value;
    }

    /**
     * @param value a value read in place from a channel
     * @return the value, owning its memory (see {@link WireIn#own})
     */
    public static Object owned(Object value) {
        return WireIn.own(value);
    }

    /**
     * @param function an actor factory or a {@code Method0..Method8}
     * @param codec    encodes its captured values
     * @return its encoding
     * @throws IllegalArgumentException if it captures a value the codec cannot encode
     */
    public static byte[] lambdaBytes(Serializable function, ValueCodec codec) {
        WireOut out = new WireOut();
        LambdaCodec.write(out, function, codec);
        return out.toByteArray();
    }

    /**
     * @param bytes  an encoding from {@link #lambdaBytes}
     * @param codec  decodes its captured values
     * @param loader loads its classes
     * @return the function
     */
    public static Serializable lambda(byte[] bytes, ValueCodec codec, ClassLoader loader) {
        WireIn in = new WireIn(bytes);
        Serializable function = LambdaCodec.read(in, codec, loader);
        in.expectEnd();
        return function;
    }

    /**
     * @param plan  a plan
     * @param codec encodes its constants
     * @return its encoding
     */
    public static byte[] planBytes(ExecutionPlan plan, ValueCodec codec) {
        return PlanCodec.encode(plan, codec);
    }

    /**
     * @param bytes  an encoding from {@link #planBytes}
     * @param codec  decodes its constants
     * @param loader loads its classes
     * @return the plan
     */
    public static ExecutionPlan plan(byte[] bytes, ValueCodec codec, ClassLoader loader) {
        return PlanCodec.decode(bytes, codec, loader);
    }

    /**
     * @param options compile options
     * @return their encoding
     */
    public static byte[] optionsBytes(CompileOptions options) {
        return PlanCodec.encode(options);
    }

    /**
     * @param bytes an encoding from {@link #optionsBytes}
     * @return the options
     */
    public static CompileOptions options(byte[] bytes) {
        return PlanCodec.decodeOptions(bytes);
    }

    /**
     * Writes the processes of a graph into a control message.
     *
     * @param m     the message
     * @param peers the processes
     */
    public static void putPeers(Message m, Collection<Peer> peers) {
        m.putInt(peers.size());
        for (Peer p : peers) {
            m.putString(p.process()).putLong(p.pid()).putString(p.host()).putString(p.endpoint())
                    .putString(p.shmDirectory());
        }
    }

    /**
     * @param m a control message positioned at what {@link #putPeers} wrote
     * @return the processes, by process name
     */
    public static Map<String, Peer> peers(Message m) {
        int n = m.getInt();
        Map<String, Peer> peers = new HashMap<>();
        for (int i = 0; i < n; i++) {
            Peer p = new Peer(m.getString(), m.getLong(), m.getString(), m.getString(), m.getString());
            peers.put(p.process(), p);
        }
        return peers;
    }

    /**
     * Appends the ids of a plan's NCCL communicators to a message.
     *
     * @param m   the message
     * @param ids the ids, one per communicator of the plan
     */
    public static void putCommunicatorIds(Message m, List<byte[]> ids) {
        m.putInt(ids.size());
        ids.forEach(m::putBytes);
    }

    /**
     * Reads what {@link #putCommunicatorIds} wrote; each id is checked when the graph's communicators are made.
     *
     * @param m the message
     * @return the ids
     * @throws IllegalArgumentException on a count that no plan has
     */
    public static List<byte[]> communicatorIds(Message m) {
        int n = m.getInt();
        if (n < 0 || n > MAX_COMMUNICATORS) {
            throw new IllegalArgumentException("a plan has 0 to " + MAX_COMMUNICATORS + " communicators, got " + n);
        }
        List<byte[]> ids = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            ids.add(m.getBytes());
        }
        return ids;
    }

    /**
     * @param m   the message
     * @param udp how a graph's UDP channels are laid out, or null if it has none
     */
    public static void putUdp(Message m, UdpSettings udp) {
        if (udp == null) {
            m.putInt(0);
            return;
        }
        m.putInt(1).putInt(udp.streamBase()).putInt(udp.mtuLength()).putInt(udp.termLength()).putLong(udp.peerTimeoutNs())
                .putBytes(udp.dataKey());
    }

    /**
     * @param m a control message positioned at what {@link #putUdp} wrote
     * @return the settings, or null
     * @throws IllegalArgumentException if the message ends early or carries a key of a length no driver makes
     */
    public static UdpSettings udp(Message m) {
        if (m.getInt() == 0) {
            return null;
        }
        int streamBase = m.getInt();
        int mtuLength = m.getInt();
        int termLength = m.getInt();
        long peerTimeoutNs = m.getLong();
        byte[] key = m.getBytes();
        if (key != null && (key.length < AeronUdpChannel.MIN_KEY_BYTES || key.length > MAX_KEY_BYTES)) {
            throw new IllegalArgumentException("a graph's data key of " + key.length + " bytes; keys have "
                    + AeronUdpChannel.MIN_KEY_BYTES + " to " + MAX_KEY_BYTES);
        }
        return new UdpSettings(streamBase, mtuLength, termLength, peerTimeoutNs, key);
    }
}
