package dev.kiln.executor.wire;

import dev.kiln.tensor.Tensor;
import dev.kiln.transport.ValueCodec;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Reads a message written by {@link WireOut}, front to back. Every read checks that the bytes
 * are there: a truncated or corrupt message throws {@link IllegalArgumentException} saying what
 * was expected at which offset, never an index or array-size exception.
 *
 * <p>Not thread-safe: one thread reads a message.
 */
public final class WireIn {

    private static final VarHandle INT = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle LONG = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

    private final byte[] bytes;
    private int position;

    /** @param bytes the message; not copied, so leave it alone while reading */
    public WireIn(byte[] bytes) {
        this.bytes = bytes;
    }

    /**
     * @return the next 4 bytes as an int
     * @throws IllegalArgumentException if fewer remain
     */
    public int readInt() {
        require(4, "an int");
        int value = (int) INT.get(bytes, position);
        position += 4;
        return value;
    }

    /**
     * @return the next 8 bytes as a long
     * @throws IllegalArgumentException if fewer remain
     */
    public long readLong() {
        require(8, "a long");
        long value = (long) LONG.get(bytes, position);
        position += 8;
        return value;
    }

    /**
     * @return the next byte as a boolean
     * @throws IllegalArgumentException if none remains, or it is neither 0 nor 1
     */
    public boolean readBoolean() {
        require(1, "a boolean");
        byte value = bytes[position];
        if (value != 0 && value != 1) {
            throw corrupt("a boolean is " + value + ", not 0 or 1");
        }
        position++;
        return value == 1;
    }

    /**
     * @return a string written by {@link WireOut#writeString}, or null
     * @throws IllegalArgumentException if the message is truncated or the length is negative (other than -1)
     */
    public String readString() {
        int length = readInt();
        if (length == -1) {
            return null;
        }
        return new String(take(length, "a string"), StandardCharsets.UTF_8);
    }

    /**
     * @return a new array holding the bytes written by {@link WireOut#writeBytes}
     * @throws IllegalArgumentException if the message is truncated or the length is negative
     */
    public byte[] readBytes() {
        return take(readInt(), "a byte array");
    }

    /**
     * Reads a value written by {@link WireOut#writeValue} that owns its memory: a {@link Tensor},
     * also one inside an {@code Object[]}, is copied out of the message into memory of its own
     * (the caller closes it).
     *
     * @param codec a codec with the writer's registrations
     * @return the value
     * @throws IllegalArgumentException if the message is truncated, the bytes are not an encoded value, or
     *                                  they hold a class this codec has not registered
     */
    public Object readValue(ValueCodec codec) {
        int length = readInt();
        int start = position;
        require(length, "a value");
        Object value;
        try {
            value = codec.decode(MemorySegment.ofArray(bytes).asSlice(start, length));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("corrupt wire message: the value at offset " + start + " cannot be"
                    + " decoded: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            // Fory may fail on corrupt bytes with exceptions of its own; a corrupt message is the caller's concern.
            throw new IllegalArgumentException("corrupt wire message: the value at offset " + start + " cannot be"
                    + " decoded: " + e, e);
        }
        position = start + length;
        return own(value);
    }

    /** @return the bytes not read yet */
    public int remaining() {
        return bytes.length - position;
    }

    /**
     * Checks that the whole message was read.
     *
     * @throws IllegalArgumentException if bytes remain
     */
    public void expectEnd() {
        if (position != bytes.length) {
            throw corrupt((bytes.length - position) + " bytes left over after the end at offset " + position);
        }
    }

    /**
     * A decoded value that stays valid after the memory it was decoded from is reused: a tensor
     * view is copied, in arrays too; anything else is returned as is.
     *
     * @param value a decoded value
     * @return the value or its copy
     */
    public static Object own(Object value) {
        if (value instanceof Tensor t && !t.ownsMemory()) {
            return Tensor.copyOf(t);
        }
        if (value instanceof Object[] array) {
            for (int i = 0; i < array.length; i++) {
                array[i] = own(array[i]);
            }
        }
        return value;
    }

    private byte[] take(int length, String what) {
        require(length, what);
        byte[] value = Arrays.copyOfRange(bytes, position, position + length);
        position += length;
        return value;
    }

    private void require(int length, String what) {
        if (length < 0) {
            throw corrupt("negative length " + length + " for " + what + " at offset " + position);
        }
        if (length > bytes.length - position) {
            throw new IllegalArgumentException("truncated wire message: " + what + " of " + length
                    + " bytes at offset " + position + ", but the message ends at " + bytes.length);
        }
    }

    private static IllegalArgumentException corrupt(String why) {
        return new IllegalArgumentException("corrupt wire message: " + why);
    }
}
