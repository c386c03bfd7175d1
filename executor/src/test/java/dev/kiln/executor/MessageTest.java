package dev.kiln.executor;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Control messages as a worker or the driver receives them from the other process: every length is checked. */
class MessageTest {

    /** A message as the receiving side copies it out of the stream. */
    private static Message received(Message written) {
        return Message.read(written.buffer(), 0, written.length());
    }

    @Test
    void aBodyReadsBackInOrder() {
        Message m = received(Message.write(Message.PREPARE, 7).putLong(1).putString("g").putBytes(new byte[] {1, 2})
                .putBytes(null).putInt(-3));
        assertEquals(Message.PREPARE, m.type());
        assertEquals(7, m.correlation());
        assertEquals(1, m.getLong());
        assertEquals("g", m.getString());
        assertArrayEquals(new byte[] {1, 2}, m.getBytes());
        assertNull(m.getBytes());
        assertEquals(-3, m.getInt());
        assertEquals("control message of type 13 ends at " + (12 + 8 + 5 + 6 + 4 + 4) + ", reading 4 bytes at "
                + (12 + 8 + 5 + 6 + 4 + 4), assertThrows(IllegalArgumentException.class, m::getInt).getMessage());
    }

    /**
     * A length near {@link Integer#MAX_VALUE} announces more than the message holds: refused before anything is
     * allocated, also where it is a communicator id of PREPARE, rather than an allocation that fails the JVM's thread.
     */
    @Test
    void aLengthBeyondTheEndIsRefusedBeforeAnyAllocation() {
        Message bytes = received(Message.write(Message.PREPARE, 7).putLong(1).putInt(Integer.MAX_VALUE - 4));
        bytes.getLong();
        assertEquals("control message of type 13 ends at 24, reading " + (Integer.MAX_VALUE - 4) + " bytes at 24",
                assertThrows(IllegalArgumentException.class, bytes::getBytes).getMessage());

        Message ids = received(Message.write(Message.PREPARE, 7).putInt(1).putInt(Integer.MAX_VALUE));
        assertEquals("control message of type 13 ends at 20, reading " + Integer.MAX_VALUE + " bytes at 20",
                assertThrows(IllegalArgumentException.class, () -> Codecs.communicatorIds(ids)).getMessage());

        Message some = Message.write(Message.PREPARE, 7);
        Codecs.putCommunicatorIds(some, List.of(new byte[128], new byte[128]));
        assertEquals(2, Codecs.communicatorIds(received(some)).size());
    }
}
