package dev.kiln.transport;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.nio.charset.StandardCharsets;
import java.security.DigestException;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Arrays;

/**
 * HMAC-SHA256 (RFC 2104) tags, truncated to {@value #TAG_BYTES} bytes, for the frames of one direction of an
 * {@link AeronUdpChannel}: data frames, or release messages. The key of each purpose is derived from the
 * channel's key, {@code HMAC(key, "kiln-udp-1 " + purpose)}, so that a tag of one purpose never verifies as the
 * other's.
 *
 * <p>Allocation-free after construction: the hash state is a reused {@link MessageDigest}, and the key's inner
 * and outer pads are precomputed. Not thread-safe: one instance per channel side, used by its owner thread.
 */
final class FrameMac {

    /** Bytes of a tag: half of HMAC-SHA256's output (128 bits; RFC 2104 allows truncation to half). */
    static final int TAG_BYTES = 16;
    /** The fewest key bytes accepted. */
    static final int MIN_KEY_BYTES = 16;

    private static final int BLOCK = 64;
    private static final int HASH = 32;

    private final MessageDigest sha;
    private final byte[] innerPad = new byte[BLOCK];
    private final byte[] outerPad = new byte[BLOCK];
    private final byte[] inner = new byte[HASH];
    private final byte[] full = new byte[HASH];

    /**
     * @param key     the channel's key, at least {@value #MIN_KEY_BYTES} bytes
     * @param purpose what the tags are for, e.g. {@code "data"} or {@code "release"}
     * @throws IllegalArgumentException if the key is shorter
     */
    FrameMac(byte[] key, String purpose) {
        if (key.length < MIN_KEY_BYTES) {
            throw new IllegalArgumentException("a channel key needs at least " + MIN_KEY_BYTES + " bytes, got "
                    + key.length);
        }
        byte[] derived;
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            derived = mac.doFinal(("kiln-udp-1 " + purpose).getBytes(StandardCharsets.UTF_8));
            sha = MessageDigest.getInstance("SHA-256");
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("this JVM lacks HmacSHA256 or SHA-256, which every Java SE has", e);
        }
        for (int i = 0; i < BLOCK; i++) {
            byte k = i < derived.length ? derived[i] : 0;
            innerPad[i] = (byte) (k ^ 0x36);
            outerPad[i] = (byte) (k ^ 0x5c);
        }
        Arrays.fill(derived, (byte) 0);
    }

    /**
     * Computes the tag of a frame made of two parts of {@code frame}, a header and a body, and writes it into
     * {@code frame} at {@code tagAt}.
     *
     * @param frame    the frame's bytes
     * @param headerAt where the header starts
     * @param header   the header's length
     * @param bodyAt   where the body starts
     * @param body     the body's length
     * @param tagAt    where to write the {@value #TAG_BYTES}-byte tag
     */
    void sign(byte[] frame, int headerAt, int header, int bodyAt, int body, int tagAt) {
        compute(frame, headerAt, header, bodyAt, body);
        System.arraycopy(full, 0, frame, tagAt, TAG_BYTES);
    }

    /**
     * Checks the tag of a frame laid out as for {@link #sign}, in time independent of where it differs.
     *
     * @return whether the tag at {@code tagAt} is the frame's
     */
    boolean verify(byte[] frame, int headerAt, int header, int bodyAt, int body, int tagAt) {
        compute(frame, headerAt, header, bodyAt, body);
        int diff = 0;
        for (int i = 0; i < TAG_BYTES; i++) {
            diff |= full[i] ^ frame[tagAt + i];
        }
        return diff == 0;
    }

    private void compute(byte[] frame, int headerAt, int header, int bodyAt, int body) {
        try {
            sha.update(innerPad, 0, BLOCK);
            sha.update(frame, headerAt, header);
            sha.update(frame, bodyAt, body);
            sha.digest(inner, 0, HASH);
            sha.update(outerPad, 0, BLOCK);
            sha.update(inner, 0, HASH);
            sha.digest(full, 0, HASH);
        } catch (DigestException e) {
            throw new IllegalStateException("SHA-256 refused a 32-byte output buffer", e);
        }
    }
}
