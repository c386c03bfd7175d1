package dev.kiln.transport;

import dev.kiln.transport.control.MessageHeaderDecoder;
import org.agrona.DirectBuffer;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Checks for reading SBE messages of Kiln's control protocol ({@code src/main/sbe/kiln-control.xml}, codecs in
 * {@code dev.kiln.transport.control}) as received from another process: the header must name this schema, its
 * version and the expected block length, and each variable-length field must fit in what is left of the message
 * before anything is allocated for it. Decode from a buffer that holds exactly the message, so that Agrona's
 * bounds checks stop any read past its end. Every failure is an {@link IllegalArgumentException}. Stateless.
 */
public final class Sbe {

    /** Bytes of the message header before every message. */
    public static final int HEADER_LENGTH = MessageHeaderDecoder.ENCODED_LENGTH;

    private Sbe() {
    }

    /**
     * Reads a message header.
     *
     * @param buffer holds the message
     * @param offset where it starts
     * @param length its length
     * @return the template id
     * @throws IllegalArgumentException if the message is shorter than a header or names another schema or version
     */
    public static int templateId(DirectBuffer buffer, int offset, int length) {
        if (length < HEADER_LENGTH) {
            throw new IllegalArgumentException("a control message of " + length + " bytes is shorter than its "
                    + HEADER_LENGTH + "-byte header");
        }
        MessageHeaderDecoder h = new MessageHeaderDecoder().wrap(buffer, offset);
        if (h.schemaId() != MessageHeaderDecoder.SCHEMA_ID || h.version() != MessageHeaderDecoder.SCHEMA_VERSION) {
            throw new IllegalArgumentException("not a Kiln control message of schema " + MessageHeaderDecoder.SCHEMA_ID
                    + " version " + MessageHeaderDecoder.SCHEMA_VERSION + " (schema " + h.schemaId() + " version "
                    + h.version() + "): run the same Kiln version everywhere");
        }
        return h.templateId();
    }

    /**
     * Checks that a message's header announces the block length of its template and that the block fits.
     *
     * @param buffer   holds the message
     * @param offset   where it starts
     * @param length   its length
     * @param expected the template's block length
     * @param what     the message's name, for errors
     * @throws IllegalArgumentException if not
     */
    public static void checkBlock(DirectBuffer buffer, int offset, int length, int expected, String what) {
        int block = new MessageHeaderDecoder().wrap(buffer, offset).blockLength();
        if (block != expected || HEADER_LENGTH + block > length) {
            throw new IllegalArgumentException("a " + what + " message with a block of " + block + " bytes in "
                    + length + " bytes; its block has " + expected);
        }
    }

    /**
     * Checks a repeating group's dimensions as the decoder read them.
     *
     * @param blockLength the block length the group announces
     * @param expected    the group's block length
     * @param what        the group, for errors
     * @throws IllegalArgumentException if they differ
     */
    public static void checkGroup(int blockLength, int expected, String what) {
        if (blockLength != expected) {
            throw new IllegalArgumentException("a group of " + what + " with " + blockLength + "-byte entries; they have "
                    + expected);
        }
    }

    /**
     * Checks the length of a variable-length field before it is read.
     *
     * @param length       the length its header announces (an unsigned 32-bit length may arrive negative here)
     * @param limit        where its header starts
     * @param headerLength bytes of its length header
     * @param end          where the message ends
     * @param max          the most bytes this field may hold
     * @param what         the field, for errors
     * @return the length
     * @throws IllegalArgumentException if it does not fit in the message or exceeds {@code max}
     */
    public static int varLength(int length, int limit, int headerLength, int end, long max, String what) {
        long left = (long) end - limit - headerLength;
        if (length < 0 || length > left || length > max) {
            throw new IllegalArgumentException("the " + what + " field announces " + Integer.toUnsignedString(length)
                    + " bytes, " + Math.max(0, left) + " are left in the message" + (length > max ? " and at most " + max
                    + " are allowed" : ""));
        }
        return length;
    }

    /**
     * @param bytes UTF-8 from the network
     * @param what  the field, for errors
     * @return the string
     * @throws IllegalArgumentException if the bytes are not UTF-8
     */
    public static String utf8(byte[] bytes, String what) {
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException("the " + what + " is not UTF-8", e);
        }
    }

    /**
     * Checks that a decoder read exactly the message.
     *
     * @param limit where the decoder stopped
     * @param end   where the message ends
     * @param what  the message, for errors
     * @throws IllegalArgumentException if bytes are left
     */
    public static void expectEnd(int limit, int end, String what) {
        if (limit != end) {
            throw new IllegalArgumentException((end - limit) + " bytes after the " + what + " message");
        }
    }
}
