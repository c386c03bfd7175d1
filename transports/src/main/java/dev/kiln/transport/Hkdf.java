package dev.kiln.transport;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.security.GeneralSecurityException;

/**
 * HKDF with HMAC-SHA256 (RFC 5869) on the JDK's {@code HmacSHA256}: {@link #extract} concentrates input keying
 * material into a pseudorandom key, {@link #expand} stretches that into keys bound to a label. Stateless and
 * thread-safe.
 */
public final class Hkdf {

    /** Bytes of an HMAC-SHA256, and so of a pseudorandom key. */
    public static final int HASH_BYTES = 32;
    private static final String ALGORITHM = "HmacSHA256";

    private Hkdf() {
    }

    /**
     * HKDF-Extract: {@code PRK = HMAC-SHA256(salt, ikm)}.
     *
     * @param salt a non-secret random value; empty means {@value #HASH_BYTES} zero bytes, as the RFC says
     * @param ikm  the input keying material
     * @return the pseudorandom key, {@value #HASH_BYTES} bytes
     */
    public static byte[] extract(byte[] salt, byte[] ikm) {
        return hmac(salt.length == 0 ? new byte[HASH_BYTES] : salt).doFinal(ikm);
    }

    /**
     * HKDF-Expand: {@code T(i) = HMAC-SHA256(prk, T(i-1) | info | i)}, concatenated and cut to {@code length}.
     *
     * @param prk    a pseudorandom key from {@link #extract}, at least {@value #HASH_BYTES} bytes
     * @param info   context that binds the key to its use
     * @param length bytes wanted, 1 to 255 * {@value #HASH_BYTES}
     * @return the output keying material
     * @throws IllegalArgumentException on a short key or a length out of range
     */
    public static byte[] expand(byte[] prk, byte[] info, int length) {
        if (prk.length < HASH_BYTES) {
            throw new IllegalArgumentException("a pseudorandom key has at least " + HASH_BYTES + " bytes, got "
                    + prk.length);
        }
        if (length < 1 || length > 255 * HASH_BYTES) {
            throw new IllegalArgumentException("HKDF-SHA256 gives 1 to " + 255 * HASH_BYTES + " bytes, asked for "
                    + length);
        }
        Mac mac = hmac(prk);
        byte[] out = new byte[length];
        byte[] t = new byte[0];
        for (int i = 1, at = 0; at < length; i++) {
            mac.update(t);
            mac.update(info);
            mac.update((byte) i);
            t = mac.doFinal();
            int n = Math.min(t.length, length - at);
            System.arraycopy(t, 0, out, at, n);
            at += n;
        }
        return out;
    }

    /**
     * @param key a key of any length
     * @return a new HMAC-SHA256 with that key
     */
    public static Mac hmac(byte[] key) {
        try {
            Mac mac = Mac.getInstance(ALGORITHM);
            mac.init(new SecretKeySpec(key, ALGORITHM));
            return mac;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("this JVM has no " + ALGORITHM, e);
        }
    }
}
