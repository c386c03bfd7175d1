package dev.kiln.executor;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A graph's UDP settings travel with its plan in {@code Prepare}, its data key included, and the key is never printed. */
class UdpSettingsTest {

    private static UdpSettings roundTrip(UdpSettings udp) {
        byte[] bytes = ControlCodec.encode(new Message.Prepare(1, 2, "g", new byte[] {1}, new byte[] {2}, udp,
                List.of(), List.of(), 1));
        return ((Message.Prepare) ControlCodec.decode(new UnsafeBuffer(bytes), bytes.length)).udp();
    }

    @Test
    void theKeyTravelsWithTheOtherSettings() {
        byte[] key = new byte[32];
        key[5] = 42;
        UdpSettings back = roundTrip(new UdpSettings(1_000_000, 1408, 1 << 22, 10_000_000_000L, key));
        assertEquals(1_000_000, back.streamBase());
        assertEquals(1408, back.mtuLength());
        assertEquals(1 << 22, back.termLength());
        assertEquals(10_000_000_000L, back.peerTimeoutNs());
        assertArrayEquals(key, back.dataKey());
        assertNull(roundTrip(new UdpSettings(7, 1408, 1 << 22, 1, null)).dataKey(), "no key: not authenticated");
        assertNull(roundTrip(null));
    }

    @Test
    void aKeyOfALengthNoDriverMakesIsRefused() {
        for (int length : new int[] {15, 65}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> roundTrip(new UdpSettings(7, 1408, 1 << 22, 1, new byte[length])));
            assertEquals("a graph's data key of " + length + " bytes; keys have 16 to 64", e.getMessage());
        }
    }

    @Test
    void theKeyIsNeverPrinted() {
        byte[] key = new byte[32];
        java.util.Arrays.fill(key, (byte) 0x41);
        String text = new UdpSettings(7, 1408, 1 << 22, 1, key).toString();
        assertTrue(text.endsWith("dataKey=set]"), text);
        assertFalse(text.contains("65") || text.contains("AAAA") || text.contains("[B@"), text);
    }
}
