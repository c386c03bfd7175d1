package dev.kiln.executor.wire;

import dev.kiln.transport.ValueCodec;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * A growable byte array that control-plane messages are written into, read back by {@link WireIn}.
 *
 * <p>Format: ints and longs little-endian; a boolean one byte (0 or 1); a string an int length
 * ({@code -1} for null) then UTF-8 bytes; a byte array an int length then the bytes; a value an
 * int length then what {@link ValueCodec#encode} wrote (native byte order, so both ends must
 * share it, as they do on one host).
 *
 * <p>Not thread-safe: one thread writes a message, then takes {@link #toByteArray()}.
 */
public final class WireOut {

    private static final VarHandle INT = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle LONG = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    /** Leaves room for the array header; larger arrays fail on most JVMs. */
    private static final int MAX_SIZE = Integer.MAX_VALUE - 16;

    private byte[] buffer = new byte[256];
    private int size;

    /** Creates an empty message. */
    public WireOut() {
    }

    /** @param value written as 4 bytes */
    public void writeInt(int value) {
        ensure(4);
        INT.set(buffer, size, value);
        size += 4;
    }

    /** @param value written as 8 bytes */
    public void writeLong(long value) {
        ensure(8);
        LONG.set(buffer, size, value);
        size += 8;
    }

    /** @param value written as one byte, 0 or 1 */
    public void writeBoolean(boolean value) {
        ensure(1);
        buffer[size++] = (byte) (value ? 1 : 0);
    }

    /** @param value a string or null, written as its UTF-8 length ({@code -1} for null) and bytes */
    public void writeString(String value) {
        if (value == null) {
            writeInt(-1);
        } else {
            writeBytes(value.getBytes(StandardCharsets.UTF_8));
        }
    }

    /** @param value written as its length and its bytes; not null */
    public void writeBytes(byte[] value) {
        ensure(4L + value.length);
        writeInt(value.length);
        System.arraycopy(value, 0, buffer, size, value.length);
        size += value.length;
    }

    /**
     * Writes a value through the codec, as its encoded length and the encoded bytes. On an
     * exception nothing is written.
     *
     * @param codec the codec; the reader needs the same registrations
     * @param value anything the codec encodes
     * @throws IllegalArgumentException if the codec cannot encode the value (its message says which class
     *                                  to register), or it is larger than a message can be (2 GiB)
     */
    public void writeValue(ValueCodec codec, Object value) {
        int start = size;
        writeInt(0);
        try {
            long n = codec.encode(value, rest());
            if (n < 0) {
                ensure(-n);
                n = codec.encode(value, rest());
            }
            INT.set(buffer, start, (int) n);
            size += (int) n;
        } catch (RuntimeException e) {
            size = start;
            throw e;
        }
    }

    /** @return the bytes written so far */
    public int size() {
        return size;
    }

    /** @return a copy of the bytes written so far */
    public byte[] toByteArray() {
        return Arrays.copyOf(buffer, size);
    }

    private MemorySegment rest() {
        return MemorySegment.ofArray(buffer).asSlice(size);
    }

    private void ensure(long more) {
        long needed = size + more;
        if (needed > MAX_SIZE) {
            throw new IllegalArgumentException("a wire message cannot hold " + needed + " bytes (at most " + MAX_SIZE
                    + "); send large values through a channel instead");
        }
        if (needed > buffer.length) {
            buffer = Arrays.copyOf(buffer, (int) Math.min(MAX_SIZE, Math.max(needed, 2L * buffer.length)));
        }
    }
}
