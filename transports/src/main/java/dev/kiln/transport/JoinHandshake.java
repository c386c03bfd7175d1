package dev.kiln.transport;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Objects;

/**
 * Mutual authentication of a worker that joins a driver, with a secret both were given and that
 * never goes on the wire: HMAC-SHA256 challenge and response over fresh random nonces. Pure: it
 * makes and checks the messages; sending them is the caller's.
 *
 * <pre>
 * 1. driver -> worker  challenge: the driver's nonce, 32 bytes from SecureRandom   DriverSide.challenge()
 * 2. worker -> driver  Response: worker name, WorkerInfo bytes, the worker's nonce,  WorkerSide.respond(challenge)
 *                      MAC_w = HMAC(secret, "kiln-join-1 worker" | transcript)
 * 3. driver            checks MAC_w in constant time                               DriverSide.accept(response)
 *    driver -> worker  proof = HMAC(secret, "kiln-join-1 driver" | transcript)       DriverSide.proof()
 * 4. worker            checks the proof in constant time                           WorkerSide.acceptDriver(proof)
 *
 * transcript = driver nonce | worker nonce | int length | name (UTF-8) | int length | info bytes
 * </pre>
 *
 * The driver's fresh nonce makes every response good for one join only (a recorded response does
 * not answer another challenge), the worker's nonce does the same for the driver's proof, the
 * labels keep a response from passing as a proof, and the lengths keep name and info from
 * trading bytes. Both checks use {@link MessageDigest#isEqual}, whose time does not depend on
 * where the bytes differ. The handshake authenticates the join, not later traffic: channels
 * between hosts are not encrypted or signed (see {@code docs/aeron-udp.md}).
 *
 * <p>Each side object serves one join and is not thread-safe; the class itself holds no state.
 */
public final class JoinHandshake {

    /** Bytes of each nonce. */
    public static final int NONCE_BYTES = 32;
    /** Bytes of an HMAC-SHA256. */
    public static final int MAC_BYTES = 32;
    /** Shortest secret accepted, in bytes. */
    public static final int MIN_SECRET_BYTES = 16;
    /** Longest worker name, in UTF-8 bytes. */
    public static final int MAX_NAME_BYTES = 255;

    private static final String ALGORITHM = "HmacSHA256";
    private static final byte[] WORKER_LABEL = "kiln-join-1 worker".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] DRIVER_LABEL = "kiln-join-1 driver".getBytes(StandardCharsets.US_ASCII);
    /** "KJR1" as a big-endian int: the response encoding's magic and version. */
    private static final int RESPONSE_MAGIC = 0x4B4A5231;
    private static final int MAX_INFO_BYTES = 1 << 16;
    private static final SecureRandom RANDOM = new SecureRandom();

    private JoinHandshake() {
    }

    /**
     * The driver's side of one join: draws its challenge at construction, checks the worker's
     * response once, and then proves the driver knows the secret too.
     */
    public static final class DriverSide {

        private final Mac mac;
        private final byte[] nonce = nonce();
        private boolean answered;
        private byte[] proof;

        /**
         * @param secret the shared secret, at least {@value JoinHandshake#MIN_SECRET_BYTES} bytes (copied)
         * @throws IllegalArgumentException if the secret is too short
         */
        public DriverSide(byte[] secret) {
            this.mac = mac(secret);
        }

        /** @return the challenge to send to the worker: this side's nonce, {@value JoinHandshake#NONCE_BYTES} bytes (a copy) */
        public byte[] challenge() {
            return nonce.clone();
        }

        /**
         * Checks the worker's response to {@link #challenge()}. Only the first call can accept:
         * a response seen twice is a replay.
         *
         * @param response what the worker sent
         * @return whether the worker knows the secret and answered this challenge, for exactly the
         *         name and info in {@code response}
         */
        public boolean accept(Response response) {
            if (answered) {
                return false;
            }
            answered = true;
            byte[] expected = sign(mac, WORKER_LABEL, nonce, response);
            if (!MessageDigest.isEqual(expected, response.mac)) {
                return false;
            }
            proof = sign(mac, DRIVER_LABEL, nonce, response);
            return true;
        }

        /**
         * @return the proof to send back to an accepted worker, {@value JoinHandshake#MAC_BYTES} bytes (a copy)
         * @throws IllegalStateException if {@link #accept} has not accepted a response
         */
        public byte[] proof() {
            if (proof == null) {
                throw new IllegalStateException("no response was accepted: there is no proof to send");
            }
            return proof.clone();
        }
    }

    /**
     * The worker's side of one join: answers the driver's challenge once and checks the driver's
     * proof.
     */
    public static final class WorkerSide {

        private final Mac mac;
        private final String workerName;
        private final byte[] info;
        private byte[] challenge;
        private Response response;

        /**
         * @param secret     the shared secret, at least {@value JoinHandshake#MIN_SECRET_BYTES} bytes (copied)
         * @param workerName the name this worker joins as, 1 to {@value JoinHandshake#MAX_NAME_BYTES} bytes of UTF-8
         * @param info       what this worker advertises
         * @throws IllegalArgumentException if the secret is too short or the name out of range
         */
        public WorkerSide(byte[] secret, String workerName, WorkerInfo info) {
            this.mac = mac(secret);
            this.workerName = checkName(workerName);
            this.info = info.encode();
        }

        /**
         * @param challenge the driver's challenge, {@value JoinHandshake#NONCE_BYTES} bytes
         * @return the response to send to the driver, with a fresh nonce of this worker
         * @throws IllegalArgumentException if the challenge has the wrong length
         * @throws IllegalStateException    if this side already responded
         */
        public Response respond(byte[] challenge) {
            if (challenge.length != NONCE_BYTES) {
                throw new IllegalArgumentException("a challenge has " + NONCE_BYTES + " bytes, got " + challenge.length);
            }
            if (response != null) {
                throw new IllegalStateException("this worker side already responded; a join answers one challenge");
            }
            this.challenge = challenge.clone();
            Response unsigned = new Response(workerName, info, nonce(), new byte[MAC_BYTES]);
            response = new Response(workerName, info, unsigned.workerNonce, sign(mac, WORKER_LABEL, this.challenge,
                    unsigned));
            return response;
        }

        /**
         * @param proof what the driver sent back
         * @return whether the driver knows the secret and answered this worker's response
         * @throws IllegalStateException if this side has not responded yet
         */
        public boolean acceptDriver(byte[] proof) {
            if (response == null) {
                throw new IllegalStateException("respond to the driver's challenge first");
            }
            return MessageDigest.isEqual(sign(mac, DRIVER_LABEL, challenge, response), proof);
        }
    }

    /**
     * The worker's answer to a challenge: its name, its encoded {@link WorkerInfo}, its nonce and
     * its MAC. Immutable.
     */
    public static final class Response {

        private final String workerName;
        private final byte[] info;
        private final byte[] workerNonce;
        private final byte[] mac;

        private Response(String workerName, byte[] info, byte[] workerNonce, byte[] mac) {
            this.workerName = workerName;
            this.info = info;
            this.workerNonce = workerNonce;
            this.mac = mac;
        }

        /** @return the name the worker joins as; trust it only once {@link DriverSide#accept} said yes */
        public String workerName() {
            return workerName;
        }

        /** @return what the worker advertises; trust it only once {@link DriverSide#accept} said yes */
        public WorkerInfo info() {
            return WorkerInfo.decode(info);
        }

        /**
         * @return the wire form: magic {@code KJR1}, name length (int) and UTF-8, info length (int) and
         *         bytes, the worker's nonce, the MAC; big-endian
         */
        public byte[] encode() {
            byte[] name = workerName.getBytes(StandardCharsets.UTF_8);
            return ByteBuffer.allocate(4 + 4 + name.length + 4 + info.length + NONCE_BYTES + MAC_BYTES)
                    .putInt(RESPONSE_MAGIC).putInt(name.length).put(name).putInt(info.length).put(info)
                    .put(workerNonce).put(mac).array();
        }

        /**
         * Reads a response as received from the network: every length is checked, and the info
         * must be a valid {@link WorkerInfo}.
         *
         * @param bytes exactly one encoded response
         * @return the response, not yet verified
         * @throws IllegalArgumentException if the bytes are not exactly one well-formed response
         */
        public static Response decode(byte[] bytes) {
            ByteBuffer in = ByteBuffer.wrap(bytes);
            try {
                if (in.getInt() != RESPONSE_MAGIC) {
                    throw new IllegalArgumentException("not a join response (bad magic)");
                }
                String name = utf8(take(in, in.getInt(), MAX_NAME_BYTES, "worker name"));
                byte[] info = take(in, in.getInt(), MAX_INFO_BYTES, "worker info");
                WorkerInfo.decode(info);
                byte[] nonce = take(in, NONCE_BYTES, NONCE_BYTES, "nonce");
                byte[] mac = take(in, MAC_BYTES, MAC_BYTES, "MAC");
                if (in.hasRemaining()) {
                    throw new IllegalArgumentException(in.remaining() + " bytes after the join response");
                }
                return new Response(checkName(name), info, nonce, mac);
            } catch (BufferUnderflowException e) {
                throw new IllegalArgumentException("truncated join response: " + bytes.length + " bytes", e);
            }
        }

        private static byte[] take(ByteBuffer in, int length, int max, String what) {
            if (length < 0 || length > max) {
                throw new IllegalArgumentException(what + " of " + length + " bytes, at most " + max + " allowed");
            }
            byte[] b = new byte[length];
            in.get(b);
            return b;
        }

        private static String utf8(byte[] b) {
            try {
                return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(b)).toString();
            } catch (CharacterCodingException e) {
                throw new IllegalArgumentException("the worker name is not UTF-8", e);
            }
        }

        @Override
        public String toString() {
            return "JoinHandshake.Response(" + workerName + ")";
        }
    }

    private static String checkName(String name) {
        Objects.requireNonNull(name, "workerName");
        int bytes = name.getBytes(StandardCharsets.UTF_8).length;
        if (bytes == 0 || bytes > MAX_NAME_BYTES) {
            throw new IllegalArgumentException("a worker name has 1 to " + MAX_NAME_BYTES + " bytes of UTF-8, got "
                    + bytes);
        }
        return name;
    }

    private static byte[] nonce() {
        byte[] n = new byte[NONCE_BYTES];
        RANDOM.nextBytes(n);
        return n;
    }

    private static Mac mac(byte[] secret) {
        if (secret.length < MIN_SECRET_BYTES) {
            throw new IllegalArgumentException("a join secret needs at least " + MIN_SECRET_BYTES + " bytes, got "
                    + secret.length);
        }
        try {
            Mac mac = Mac.getInstance(ALGORITHM);
            mac.init(new SecretKeySpec(secret, ALGORITHM));
            return mac;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("this JVM has no " + ALGORITHM, e);
        }
    }

    private static byte[] sign(Mac mac, byte[] label, byte[] driverNonce, Response r) {
        byte[] name = r.workerName.getBytes(StandardCharsets.UTF_8);
        mac.update(label);
        mac.update(driverNonce);
        mac.update(r.workerNonce);
        mac.update(ByteBuffer.allocate(4).putInt(name.length).array());
        mac.update(name);
        mac.update(ByteBuffer.allocate(4).putInt(r.info.length).array());
        mac.update(r.info);
        return mac.doFinal();
    }
}
