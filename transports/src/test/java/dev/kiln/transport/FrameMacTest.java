package dev.kiln.transport;

import org.junit.jupiter.api.Test;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The frame tags are HMAC-SHA256 as the JDK computes it, per purpose, and any changed bit fails them. */
class FrameMacTest {

    private static byte[] hmac(byte[] key, byte[]... parts) throws Exception {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key, "HmacSHA256"));
        for (byte[] p : parts) {
            mac.update(p);
        }
        return mac.doFinal();
    }

    @Test
    void aTagIsTheJdksHmacSha256OfHeaderAndBodyUnderThePurposesKeyTruncatedTo16Bytes() throws Exception {
        Random random = new Random(7);
        byte[] key = new byte[32];
        random.nextBytes(key);
        FrameMac data = new FrameMac(key, "data");
        for (int body : new int[] {0, 1, 55, 56, 64, 1000, 8160}) {
            byte[] frame = new byte[48 + body];
            random.nextBytes(frame);
            data.sign(frame, 0, 32, 48, body, 32);
            byte[] purposeKey = hmac(key, "kiln-udp-1 data".getBytes(StandardCharsets.UTF_8));
            byte[] expected = Arrays.copyOf(hmac(purposeKey, Arrays.copyOfRange(frame, 0, 32),
                    Arrays.copyOfRange(frame, 48, frame.length)), 16);
            assertArrayEquals(expected, Arrays.copyOfRange(frame, 32, 48), "body of " + body + " bytes");
            assertTrue(data.verify(frame, 0, 32, 48, body, 32));
        }
    }

    @Test
    void anyFlippedBitOrAnotherPurposeFailsTheTag() {
        byte[] key = new byte[16];
        Arrays.fill(key, (byte) 3);
        FrameMac data = new FrameMac(key, "data");
        byte[] frame = new byte[48 + 40];
        new Random(9).nextBytes(frame);
        data.sign(frame, 0, 32, 48, 40, 32);
        for (int i = 0; i < frame.length; i++) {
            for (int bit = 0; bit < 8; bit++) {
                frame[i] ^= (byte) (1 << bit);
                assertFalse(data.verify(frame, 0, 32, 48, 40, 32), "byte " + i + ", bit " + bit);
                frame[i] ^= (byte) (1 << bit);
            }
        }
        assertTrue(data.verify(frame, 0, 32, 48, 40, 32));
        assertFalse(new FrameMac(key, "release").verify(frame, 0, 32, 48, 40, 32), "a data tag is no release tag");
        byte[] otherKey = key.clone();
        otherKey[15] ^= 1;
        assertFalse(new FrameMac(otherKey, "data").verify(frame, 0, 32, 48, 40, 32));
    }

    @Test
    void aShortKeyIsRefused() {
        assertEquals("a channel key needs at least 16 bytes, got 8",
                assertThrows(IllegalArgumentException.class, () -> new FrameMac(new byte[8], "data")).getMessage());
    }
}
