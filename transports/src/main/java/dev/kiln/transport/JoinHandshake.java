package dev.kiln.transport;

import dev.kiln.transport.control.MessageHeaderEncoder;
import dev.kiln.transport.control.ResponseDecoder;
import dev.kiln.transport.control.ResponseEncoder;
import org.agrona.ExpandableArrayBuffer;
import org.agrona.concurrent.UnsafeBuffer;

import javax.crypto.Mac;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Objects;

/**
 * Mutual authentication of a worker that joins a driver, with a secret both were given and that
 * never goes on the wire: HMAC-SHA256 challenge and response over fresh random nonces, and the keys
 * of the control messages that follow. Pure: it makes and checks the messages; sending them is the
 * caller's.
 *
 * <pre>
 * 0. worker -> driver  HELLO (name, endpoint, pid, shared-memory directory, protocol version, cookie, padding)
 * 1. driver -> worker  challenge: the driver's nonce, 32 bytes from SecureRandom       DriverSide.challenge()
 * 2. worker -> driver  Response: the driver's nonce it answers, worker name, WorkerInfo bytes, the worker's
 *                      nonce, MAC_w = HMAC(secret, "kiln-join-2 worker" | transcript)     WorkerSide.respond(challenge)
 * 3. driver            checks MAC_w in constant time                                   DriverSide.accept(response)
 *    driver -> worker  proof = HMAC(secret, "kiln-join-2 driver" | transcript)           DriverSide.proof()
 * 4. worker            checks the proof in constant time                               WorkerSide.acceptDriver(proof)
 *
 * transcript = driver nonce | worker nonce | int length | HELLO bytes | int length | name (UTF-8)
 *              | int length | info bytes                                               (lengths big-endian)
 *
 * keys: PRK = HKDF-Extract(salt = driver nonce | worker nonce, IKM = secret)
 *       driver to worker = HKDF-Expand(PRK, "kiln-control-1 driver to worker", 32)
 *       worker to driver = HKDF-Expand(PRK, "kiln-control-1 worker to driver", 32)    keys()
 * </pre>
 *
 * The driver's fresh nonce makes every response good for one join only (a recorded response does
 * not answer another challenge), the worker's nonce does the same for the driver's proof, the
 * labels keep a response from passing as a proof, and the lengths keep the fields from trading
 * bytes. The transcript holds the HELLO exactly as sent, so every field the worker said about itself
 * (its endpoint, pid and shared-memory directory too) is authenticated. Both checks use
 * {@link MessageDigest#isEqual}, whose time does not depend on where the bytes differ. Each join
 * gets its own pair of keys, one per direction, for the MACs of the control messages after it.
 *
 * <p>Each side object serves one join and is not thread-safe; the class itself holds no state.
 */
public final class JoinHandshake {

    /** Bytes of each nonce. */
    public static final int NONCE_BYTES = 32;
    /** Bytes of an HMAC-SHA256. */
    public static final int MAC_BYTES = 32;
    /** Bytes of each control-message key. */
    public static final int KEY_BYTES = 32;
    /** Shortest secret accepted, in bytes. */
    public static final int MIN_SECRET_BYTES = 16;
    /** Longest worker name, in UTF-8 bytes. */
    public static final int MAX_NAME_BYTES = 255;

    private static final byte[] WORKER_LABEL = "kiln-join-2 worker".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] DRIVER_LABEL = "kiln-join-2 driver".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] TO_WORKER = "kiln-control-1 driver to worker".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] TO_DRIVER = "kiln-control-1 worker to driver".getBytes(StandardCharsets.US_ASCII);
    private static final int MAX_INFO_BYTES = 1 << 16;
    private static final SecureRandom RANDOM = new SecureRandom();

    private JoinHandshake() {
    }

    /**
     * The keys of one joined worker's control messages, one per direction.
     *
     * @param send    the key of the MACs this side sends, {@value #KEY_BYTES} bytes
     * @param receive the key of the MACs this side receives
     */
    public record Keys(byte[] send, byte[] receive) {
    }

    /**
     * The driver's side of one join: draws its challenge at construction, checks the worker's
     * response once, and then proves the driver knows the secret too.
     */
    public static final class DriverSide {

        private final byte[] secret;
        private final Mac mac;
        private final byte[] hello;
        private final byte[] nonce = nonce();
        private boolean answered;
        private byte[] proof;
        private Response accepted;

        /**
         * @param secret the shared secret, at least {@value JoinHandshake#MIN_SECRET_BYTES} bytes (copied)
         * @param hello  the worker's HELLO message, exactly as received (copied)
         * @throws IllegalArgumentException if the secret is too short
         */
        public DriverSide(byte[] secret, byte[] hello) {
            this.mac = mac(secret);
            this.secret = secret.clone();
            this.hello = hello.clone();
        }

        /** @return the challenge to send to the worker: this side's nonce, {@value JoinHandshake#NONCE_BYTES} bytes (a copy) */
        public byte[] challenge() {
            return nonce.clone();
        }

        /**
         * @param response a response as received
         * @return whether it answers this side's challenge (a worker may have answered a forged one too)
         */
        public boolean answers(Response response) {
            return MessageDigest.isEqual(nonce, response.driverNonce);
        }

        /**
         * Checks the worker's response to {@link #challenge()}. Only the first call can accept:
         * a response seen twice is a replay.
         *
         * @param response what the worker sent
         * @return whether the worker knows the secret and answered this challenge, for exactly the
         *         HELLO this side was given and the name and info in {@code response}
         */
        public boolean accept(Response response) {
            if (answered) {
                return false;
            }
            answered = true;
            byte[] expected = sign(mac, WORKER_LABEL, nonce, hello, response);
            if (!answers(response) || !MessageDigest.isEqual(expected, response.mac)) {
                return false;
            }
            proof = sign(mac, DRIVER_LABEL, nonce, hello, response);
            accepted = response;
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

        /**
         * @return the keys of the accepted worker's control messages: this side sends with the driver-to-worker key
         * @throws IllegalStateException if {@link #accept} has not accepted a response
         */
        public Keys keys() {
            if (accepted == null) {
                throw new IllegalStateException("no response was accepted: there are no keys");
            }
            byte[] prk = prk(secret, nonce, accepted.workerNonce);
            return new Keys(Hkdf.expand(prk, TO_WORKER, KEY_BYTES), Hkdf.expand(prk, TO_DRIVER, KEY_BYTES));
        }
    }

    /**
     * The worker's side of one join: answers one challenge of the driver and checks the driver's proof.
     */
    public static final class WorkerSide {

        private final byte[] secret;
        private final Mac mac;
        private final byte[] hello;
        private final String workerName;
        private final byte[] info;
        private byte[] challenge;
        private Response response;

        /**
         * @param secret     the shared secret, at least {@value JoinHandshake#MIN_SECRET_BYTES} bytes (copied)
         * @param hello      the HELLO message this worker sent, exactly (copied)
         * @param workerName the name this worker joins as, 1 to {@value JoinHandshake#MAX_NAME_BYTES} bytes of UTF-8
         * @param info       what this worker advertises
         * @throws IllegalArgumentException if the secret is too short or the name out of range
         */
        public WorkerSide(byte[] secret, byte[] hello, String workerName, WorkerInfo info) {
            this.mac = mac(secret);
            this.secret = secret.clone();
            this.hello = hello.clone();
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
            Response unsigned = new Response(this.challenge, workerName, info, nonce(), new byte[MAC_BYTES]);
            response = new Response(this.challenge, workerName, info, unsigned.workerNonce, sign(mac, WORKER_LABEL,
                    this.challenge, hello, unsigned));
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
            return MessageDigest.isEqual(sign(mac, DRIVER_LABEL, challenge, hello, response), proof);
        }

        /**
         * @return the keys of this worker's control messages: this side sends with the worker-to-driver key
         * @throws IllegalStateException if this side has not responded yet
         */
        public Keys keys() {
            if (response == null) {
                throw new IllegalStateException("respond to the driver's challenge first");
            }
            byte[] prk = prk(secret, challenge, response.workerNonce);
            return new Keys(Hkdf.expand(prk, TO_DRIVER, KEY_BYTES), Hkdf.expand(prk, TO_WORKER, KEY_BYTES));
        }
    }

    /**
     * The worker's answer to a challenge: the challenge it answers, its name, its encoded {@link WorkerInfo},
     * its nonce and its MAC. Immutable.
     */
    public static final class Response {

        private final byte[] driverNonce;
        private final String workerName;
        private final byte[] info;
        private final byte[] workerNonce;
        private final byte[] mac;

        private Response(byte[] driverNonce, String workerName, byte[] info, byte[] workerNonce, byte[] mac) {
            this.driverNonce = driverNonce;
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

        /** @return the wire form: the SBE message {@code Response} of {@code kiln-control.xml}, with its header */
        public byte[] encode() {
            ExpandableArrayBuffer buffer = new ExpandableArrayBuffer(256 + info.length);
            ResponseEncoder e = new ResponseEncoder().wrapAndApplyHeader(buffer, 0, new MessageHeaderEncoder());
            byte[] name = workerName.getBytes(StandardCharsets.UTF_8);
            e.putDriverNonce(driverNonce, 0, NONCE_BYTES).putWorkerNonce(workerNonce, 0, NONCE_BYTES)
                    .putMac(mac, 0, MAC_BYTES).putName(name, 0, name.length).putInfo(info, 0, info.length);
            byte[] out = new byte[Sbe.HEADER_LENGTH + e.encodedLength()];
            buffer.getBytes(0, out);
            return out;
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
            UnsafeBuffer buffer = new UnsafeBuffer(bytes);
            int end = bytes.length;
            try {
                if (Sbe.templateId(buffer, 0, end) != ResponseDecoder.TEMPLATE_ID) {
                    throw new IllegalArgumentException("not a join response (template " + Sbe.templateId(buffer, 0, end)
                            + ")");
                }
                Sbe.checkBlock(buffer, 0, end, ResponseDecoder.BLOCK_LENGTH, "join response");
                ResponseDecoder d = new ResponseDecoder().wrap(buffer, Sbe.HEADER_LENGTH, ResponseDecoder.BLOCK_LENGTH,
                        ResponseDecoder.SCHEMA_VERSION);
                byte[] driverNonce = new byte[NONCE_BYTES];
                d.getDriverNonce(driverNonce, 0, NONCE_BYTES);
                byte[] workerNonce = new byte[NONCE_BYTES];
                d.getWorkerNonce(workerNonce, 0, NONCE_BYTES);
                byte[] mac = new byte[MAC_BYTES];
                d.getMac(mac, 0, MAC_BYTES);
                byte[] name = new byte[Sbe.varLength(d.nameLength(), d.limit(), 2, end, MAX_NAME_BYTES, "worker name")];
                d.getName(name, 0, name.length);
                byte[] info = new byte[Sbe.varLength(d.infoLength(), d.limit(), 4, end, MAX_INFO_BYTES, "worker info")];
                d.getInfo(info, 0, info.length);
                Sbe.expectEnd(d.limit(), end, "join response");
                WorkerInfo.decode(info);
                return new Response(driverNonce, checkName(Sbe.utf8(name, "worker name")), info, workerNonce, mac);
            } catch (IndexOutOfBoundsException e) {
                throw new IllegalArgumentException("truncated join response: " + bytes.length + " bytes", e);
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

    /** @return {@value #NONCE_BYTES} fresh bytes from {@link SecureRandom} */
    public static byte[] nonce() {
        byte[] n = new byte[NONCE_BYTES];
        RANDOM.nextBytes(n);
        return n;
    }

    private static Mac mac(byte[] secret) {
        if (secret.length < MIN_SECRET_BYTES) {
            throw new IllegalArgumentException("a join secret needs at least " + MIN_SECRET_BYTES + " bytes, got "
                    + secret.length);
        }
        return Hkdf.hmac(secret);
    }

    private static byte[] prk(byte[] secret, byte[] driverNonce, byte[] workerNonce) {
        byte[] salt = new byte[2 * NONCE_BYTES];
        System.arraycopy(driverNonce, 0, salt, 0, NONCE_BYTES);
        System.arraycopy(workerNonce, 0, salt, NONCE_BYTES, NONCE_BYTES);
        return Hkdf.extract(salt, secret);
    }

    private static byte[] sign(Mac mac, byte[] label, byte[] driverNonce, byte[] hello, Response r) {
        byte[] name = r.workerName.getBytes(StandardCharsets.UTF_8);
        mac.update(label);
        mac.update(driverNonce);
        mac.update(r.workerNonce);
        mac.update(ByteBuffer.allocate(4).putInt(hello.length).array());
        mac.update(hello);
        mac.update(ByteBuffer.allocate(4).putInt(name.length).array());
        mac.update(name);
        mac.update(ByteBuffer.allocate(4).putInt(r.info.length).array());
        mac.update(r.info);
        return mac.doFinal();
    }
}
