package dev.kiln.executor;

import dev.kiln.transport.JoinHandshake;
import dev.kiln.transport.WorkerInfo;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every control message through its SBE codec (and so every decoder of the control plane: {@link ControlCodec},
 * {@link JoinHandshake.Response} inside a join response, {@link WorkerInfo}): each encodes and decodes back to the
 * same bytes, and random or mutated bytes (flipped, overwritten, cut, extended, lengths near the 32-bit limits) either decode or fail
 * with {@link IllegalArgumentException}: no other exception, no allocation a length chose.
 */
class ControlCodecTest {

    private static final byte[] N = new byte[32];
    private static final WorkerInfo INFO = new WorkerInfo("h", Map.of("zone", "a"), 4,
            List.of(new WorkerInfo.Gpu("GPU-1", 1L << 30, 0)));

    /** One of each message, with every field set. */
    static final List<Message> ALL = List.of(
            new Message.Hello(ControlPlane.PROTOCOL_VERSION, 42, N, "w-1", "127.0.0.1:4000", "/dev/shm"),
            new Message.Challenge(N, N),
            new Message.JoinResponse(new JoinHandshake.WorkerSide("0123456789abcdef0123".getBytes(StandardCharsets.UTF_8),
                    new byte[] {1}, "w-1", INFO).respond(N)),
            new Message.Refused(N, "the join secret does not match the driver's"),
            new Message.Accept(N, N, 10_000, 64L << 20, List.of("a.B", "c.D")),
            new Message.Ready(42),
            new Message.JoinFailed("cannot load x.Y"),
            new Message.Heartbeat(1, 2, 3),
            new Message.Lost("silent for 10 s"),
            new Message.Shutdown(),
            new Message.Left("closed"),
            new Message.CreateActor(7, 3, -1, "model", new byte[] {1, 2, 3}),
            new Message.StopActor(3),
            new Message.Call(8, 3, 2, 99, new byte[] {4, 5}, new byte[] {6, 7, 8}),
            new Message.Prepare(9, 11, "graph-1", new byte[] {9}, new byte[] {10},
                    new UdpSettings(1_000_000, 1408, 1 << 22, 5_000_000_000L, new byte[32]),
                    List.of(new Peer("driver", 1, "h", null, "/dev/shm"), new Peer("w-1", 2, "h2", "127.0.0.1:4000", "/s")),
                    List.of(new byte[128], new byte[128]), 30_000_000_000L),
            new Message.Start(10, 11),
            new Message.StopGraph(11, 11, true),
            new Message.CommunicatorId(12),
            new Message.Reply(13, Message.Status.FAILED, "why", "at x", new byte[] {1}),
            new Message.ActorStarted(14, "a.Model", "model", "GPU-1", 1L << 20),
            new Message.TaskFailed(15, "forward", "java.lang.IllegalStateException", "no", "at y"),
            new Message.LoopDied(11, 3, "OutOfMemoryError"),
            new Message.GraphFailed(11, "peer lost"));

    private static Message decode(byte[] bytes) {
        return ControlCodec.decode(new UnsafeBuffer(bytes), bytes.length);
    }

    @Test
    void everyMessageEncodesAndDecodesToTheSameBytes() {
        for (Message m : ALL) {
            byte[] bytes = ControlCodec.encode(m);
            Message back = decode(bytes);
            assertEquals(m.getClass(), back.getClass());
            assertArrayEquals(bytes, ControlCodec.encode(back), m.getClass().getSimpleName());
        }
        Message.Prepare p = (Message.Prepare) decode(ControlCodec.encode(ALL.get(14)));
        assertEquals(List.of("driver", "w-1"), p.peers().stream().map(Peer::process).toList());
        assertEquals(null, p.peers().getFirst().endpoint());
        assertEquals(1_000_000, p.udp().streamBase());
        assertEquals(2, p.communicatorIds().size());
        assertTrue(ControlCodec.encode(ALL.getFirst()).length >= ControlCodec.MIN_HELLO_BYTES, "a HELLO is padded");
    }

    @Test
    void malformedMessagesAreRefusedWithWhatIsWrong() {
        byte[] call = ControlCodec.encode(ALL.get(13));
        assertEquals("a control message of 3 bytes is shorter than its 8-byte header",
                assertThrows(IllegalArgumentException.class, () -> decode(Arrays.copyOf(call, 3))).getMessage());
        byte[] huge = call.clone();
        int at = 8 + 32; // the method's 4-byte length, after the 32-byte block
        huge[at] = (byte) 0xff;
        huge[at + 1] = (byte) 0xff;
        huge[at + 2] = (byte) 0xff;
        huge[at + 3] = (byte) 0xff;
        assertEquals("the method field announces 4294967295 bytes, 9 are left in the message",
                assertThrows(IllegalArgumentException.class, () -> decode(huge)).getMessage());
        byte[] template = call.clone();
        template[2] = 99;
        assertEquals("control message template 99 is not one of this protocol's messages",
                assertThrows(IllegalArgumentException.class, () -> decode(template)).getMessage());
        byte[] longer = Arrays.copyOf(call, call.length + 1);
        assertEquals("1 bytes after the Call message",
                assertThrows(IllegalArgumentException.class, () -> decode(longer)).getMessage());
    }

    @Provide
    Arbitrary<byte[]> randomBytes() {
        return Arbitraries.bytes().array(byte[].class).ofMaxSize(600);
    }

    @Provide
    Arbitrary<byte[]> mutated() {
        return Arbitraries.of(ALL).flatMap(m -> mutations(ControlCodec.encode(m)));
    }

    /** Flipped, overwritten, cut or extended: the ways a hostile peer bends a valid message. */
    static Arbitrary<byte[]> mutations(byte[] valid) {
        Arbitrary<byte[]> overwrite = Arbitraries.integers().between(0, valid.length - 1).list().ofMinSize(1).ofMaxSize(6)
                .flatMap(positions -> Arbitraries.bytes().list().ofSize(positions.size()).map(values -> {
                    byte[] b = valid.clone();
                    for (int i = 0; i < positions.size(); i++) {
                        b[positions.get(i)] = values.get(i);
                    }
                    return b;
                }));
        Arbitrary<byte[]> cut = Arbitraries.integers().between(0, valid.length).map(n -> java.util.Arrays.copyOf(valid, n));
        Arbitrary<byte[]> extended = Arbitraries.bytes().array(byte[].class).ofMinSize(1).ofMaxSize(40).map(tail -> {
            byte[] b = java.util.Arrays.copyOf(valid, valid.length + tail.length);
            System.arraycopy(tail, 0, b, valid.length, tail.length);
            return b;
        });
        Arbitrary<byte[]> hugeLength = Arbitraries.integers().between(8, valid.length - 4).map(at -> {
            byte[] b = valid.clone();
            b[at] = (byte) 0xff;
            b[at + 1] = (byte) 0xff;
            b[at + 2] = (byte) 0xff;
            b[at + 3] = (byte) 0x7f;
            return b;
        });
        return Arbitraries.oneOf(overwrite, cut, extended, hugeLength);
    }

    @Provide
    Arbitrary<byte[]> mutatedInfo() {
        return mutations(INFO.encode());
    }

    @Property(tries = 3000)
    void mutatedWorkerInfoDecodesOrFailsCleanly(@ForAll("mutatedInfo") byte[] bytes) {
        try {
            assertArrayEquals(bytes, WorkerInfo.decode(bytes).encode(), "what decodes is the stable encoding");
        } catch (IllegalArgumentException expected) {
            // refused, with what is wrong
        }
    }

    @Property(tries = 2000)
    void randomBytesAsWorkerInfoFailCleanly(@ForAll("randomBytes") byte[] bytes) {
        try {
            WorkerInfo.decode(bytes);
        } catch (IllegalArgumentException expected) {
            // refused, with what is wrong
        }
    }

    @Provide
    Arbitrary<byte[]> randomBodies() {
        // A valid header of a random template, then random bytes: reaches every decoder's body.
        return Arbitraries.integers().between(1, 26).flatMap(template -> Arbitraries.bytes().array(byte[].class)
                .ofMaxSize(300).map(body -> {
                    byte[] b = Arrays.copyOf(new byte[8], 8 + body.length);
                    UnsafeBuffer u = new UnsafeBuffer(b);
                    u.putShort(0, (short) Math.min(body.length, 64), java.nio.ByteOrder.LITTLE_ENDIAN);
                    u.putShort(2, (short) (int) template, java.nio.ByteOrder.LITTLE_ENDIAN);
                    u.putShort(4, (short) 4711, java.nio.ByteOrder.LITTLE_ENDIAN);
                    u.putShort(6, (short) 1, java.nio.ByteOrder.LITTLE_ENDIAN);
                    System.arraycopy(body, 0, b, 8, body.length);
                    return b;
                }));
    }

    @Property(tries = 3000)
    void randomBytesDecodeOrFailCleanly(@ForAll("randomBytes") byte[] bytes) {
        decodeOrRefuse(bytes);
    }

    @Property(tries = 3000)
    void randomBodiesOfEveryTemplateDecodeOrFailCleanly(@ForAll("randomBodies") byte[] bytes) {
        decodeOrRefuse(bytes);
    }

    @Property(tries = 5000)
    void mutatedMessagesDecodeOrFailCleanly(@ForAll("mutated") byte[] bytes) {
        Message m = decodeOrRefuse(bytes);
        if (m != null && !(m instanceof Message.Hello)) {
            org.agrona.ExpandableArrayBuffer out = new org.agrona.ExpandableArrayBuffer(256);
            long sequence = m instanceof Message.Authenticated ? ControlCodec.sequence(new UnsafeBuffer(bytes)) : 0;
            int length = ControlCodec.encode(m, sequence, out);
            byte[] again = new byte[length];
            out.getBytes(0, again);
            assertArrayEquals(bytes, again, "what decodes encodes back to the same bytes");
        }
    }

    private static Message decodeOrRefuse(byte[] bytes) {
        try {
            return decode(bytes);
        } catch (IllegalArgumentException expected) {
            return null;
        }
    }
}
