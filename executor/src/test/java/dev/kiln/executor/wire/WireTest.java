package dev.kiln.executor.wire;

import dev.kiln.executor.wire.WireActors.Config;
import dev.kiln.executor.wire.WireActors.Secret;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.ValueCodec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link WireOut} and {@link WireIn}. */
@Timeout(30)
class WireTest {

    @Test
    void everyKindRoundTripsInOrder() {
        ValueCodec codec = new ValueCodec();
        codec.register(Config.class);
        WireOut out = new WireOut();
        out.writeInt(-7);
        out.writeLong(Long.MIN_VALUE + 3);
        out.writeBoolean(true);
        out.writeBoolean(false);
        out.writeString("ü€😀");
        out.writeString(null);
        out.writeString("");
        out.writeBytes(new byte[] {1, -2, 3});
        out.writeBytes(new byte[0]);
        out.writeValue(codec, 42L);
        out.writeValue(codec, null);
        out.writeValue(codec, new Config(2, "c"));
        out.writeValue(codec, new Object[] {1, "two", new Object[] {3.0}});
        out.writeString("x".repeat(100_000)); // grows the buffer several times
        out.writeInt(99);
        byte[] bytes = out.toByteArray();
        assertEquals(out.size(), bytes.length);

        WireIn in = new WireIn(bytes);
        assertEquals(-7, in.readInt());
        assertEquals(Long.MIN_VALUE + 3, in.readLong());
        assertTrue(in.readBoolean());
        assertFalse(in.readBoolean());
        assertEquals("ü€😀", in.readString());
        assertNull(in.readString());
        assertEquals("", in.readString());
        assertArrayEquals(new byte[] {1, -2, 3}, in.readBytes());
        assertArrayEquals(new byte[0], in.readBytes());
        assertEquals(42L, in.readValue(codec));
        assertNull(in.readValue(codec));
        assertEquals(new Config(2, "c"), in.readValue(codec));
        Object[] array = assertInstanceOf(Object[].class, in.readValue(codec));
        assertEquals("[1, two, [3.0]]", Arrays.deepToString(array));
        assertEquals("x".repeat(100_000), in.readString());
        assertEquals(99, in.readInt());
        assertEquals(0, in.remaining());
        in.expectEnd();
    }

    @Test
    void tensorsReadBackOwnTheirMemoryAndOutliveTheMessage() {
        ValueCodec codec = new ValueCodec();
        try (Tensor t = Tensor.of(new float[] {1, 2, 3, 4}, 2, 2); Tensor u = Tensor.of(new int[] {7, 8})) {
            WireOut out = new WireOut();
            out.writeValue(codec, t);
            out.writeValue(codec, new Object[] {"a", new Object[] {u}, t});
            byte[] bytes = out.toByteArray();
            WireIn in = new WireIn(bytes);
            Tensor back = assertInstanceOf(Tensor.class, in.readValue(codec));
            Object[] array = assertInstanceOf(Object[].class, in.readValue(codec));
            Arrays.fill(bytes, (byte) 0); // the message is gone; the values must not care
            try (back) {
                assertTrue(back.ownsMemory());
                assertTrue(t.contentEquals(back), back::toString);
                Tensor nested = (Tensor) ((Object[]) array[1])[0];
                Tensor last = (Tensor) array[2];
                assertTrue(nested.ownsMemory() && last.ownsMemory());
                assertTrue(u.contentEquals(nested));
                assertTrue(t.contentEquals(last));
                nested.close();
                last.close();
            }
        }
    }

    @Test
    void truncatedMessageThrowsWithWhatWasExpected() {
        WireOut out = new WireOut();
        out.writeInt(1);
        out.writeString("hello");
        byte[] bytes = Arrays.copyOf(out.toByteArray(), out.size() - 1);
        WireIn in = new WireIn(bytes);
        assertEquals(1, in.readInt());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, in::readString);
        assertEquals("truncated wire message: a string of 5 bytes at offset 8, but the message ends at 12",
                e.getMessage());
        assertEquals("truncated wire message: a long of 8 bytes at offset 0, but the message ends at 7",
                assertThrows(IllegalArgumentException.class, () -> new WireIn(new byte[7]).readLong()).getMessage());
    }

    @Test
    void corruptLengthsAndBooleansAreRefused() {
        WireOut out = new WireOut();
        out.writeInt(-5);
        assertEquals("corrupt wire message: negative length -5 for a byte array at offset 4",
                assertThrows(IllegalArgumentException.class, () -> new WireIn(out.toByteArray()).readBytes())
                        .getMessage());
        assertEquals("corrupt wire message: a boolean is 2, not 0 or 1",
                assertThrows(IllegalArgumentException.class, () -> new WireIn(new byte[] {2}).readBoolean())
                        .getMessage());
        WireIn in = new WireIn(new byte[5]);
        in.readInt();
        assertEquals("corrupt wire message: 1 bytes left over after the end at offset 4",
                assertThrows(IllegalArgumentException.class, in::expectEnd).getMessage());
    }

    @Test
    void corruptValueIsRefusedAsIllegalArgument() {
        ValueCodec codec = new ValueCodec();
        WireOut out = new WireOut();
        out.writeValue(codec, new Object[] {"abc", 5L});
        byte[] bytes = out.toByteArray();
        for (int i = 4; i < bytes.length; i++) {
            byte[] copy = bytes.clone();
            copy[i] ^= (byte) 0x80;
            try {
                new WireIn(copy).readValue(codec);
            } catch (IllegalArgumentException e) {
                assertTrue(e.getMessage().startsWith("corrupt wire message: the value at offset 4 cannot be decoded"),
                        e.getMessage());
            }
        }
        byte[] copy = bytes.clone();
        copy[4] = 99; // the tag
        assertEquals("corrupt wire message: the value at offset 4 cannot be decoded: not an encoded value: tag 99",
                assertThrows(IllegalArgumentException.class, () -> new WireIn(copy).readValue(codec)).getMessage());
    }

    @Test
    void unencodableValueWritesNothing() {
        WireOut out = new WireOut();
        out.writeInt(5);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> out.writeValue(new ValueCodec(), new Secret(1)));
        assertTrue(e.getMessage().contains("codec.register(Secret.class)"), e.getMessage());
        assertEquals(4, out.size());
        out.writeInt(6);
        WireIn in = new WireIn(out.toByteArray());
        assertEquals(5, in.readInt());
        assertEquals(6, in.readInt());
    }

    @Test
    void readerWithoutTheRegistrationSaysHowToRegister() {
        ValueCodec writer = new ValueCodec();
        writer.register(Config.class);
        WireOut out = new WireOut();
        out.writeValue(writer, new Config(1, "x"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new WireIn(out.toByteArray()).readValue(new ValueCodec()));
        assertTrue(e.getMessage().contains("codec.register"), e.getMessage());
    }
}
