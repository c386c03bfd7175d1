package dev.kiln.transport;

import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class JoinHandshakeTest {

    private static final byte[] SECRET = "correct horse battery staple".getBytes(StandardCharsets.UTF_8);
    private static final byte[] OTHER_SECRET = "correct horse battery stapler".getBytes(StandardCharsets.UTF_8);
    private static final List<WorkerInfo.Gpu> TWO_GPUS = List.of(
            new WorkerInfo.Gpu("GPU-5a1f0c2e-8d3b-4e6f-9a7c-1b2d3e4f5a6b", 80L << 30, 0b10),
            new WorkerInfo.Gpu("GPU-00000000-0000-0000-0000-000000000001", 80L << 30, 0b01));
    private static final WorkerInfo INFO = new WorkerInfo("gpu-node-7", Map.of("zone", "a", "rack", "r12"), 32,
            TWO_GPUS);

    /** Stands for the HELLO the worker sent: the handshake MACs it as bytes, whatever it holds. */
    private static final byte[] HELLO = "hello: worker-1 127.0.0.1:4000 pid 42 /dev/shm".getBytes(StandardCharsets.UTF_8);

    private static byte[] flip(byte[] b, int bit) {
        byte[] copy = b.clone();
        copy[bit / 8] ^= (byte) (1 << (bit % 8));
        return copy;
    }

    @Test
    void bothSidesAcceptWithTheRightSecret() {
        JoinHandshake.DriverSide driver = new JoinHandshake.DriverSide(SECRET, HELLO);
        JoinHandshake.WorkerSide worker = new JoinHandshake.WorkerSide(SECRET, HELLO, "worker-1", INFO);
        byte[] challenge = driver.challenge();
        assertEquals(JoinHandshake.NONCE_BYTES, challenge.length);
        byte[] wire = worker.respond(challenge).encode();
        JoinHandshake.Response received = JoinHandshake.Response.decode(wire);
        assertTrue(driver.accept(received));
        assertEquals("worker-1", received.workerName());
        assertEquals(INFO, received.info());
        byte[] proof = driver.proof();
        assertEquals(JoinHandshake.MAC_BYTES, proof.length);
        assertTrue(worker.acceptDriver(proof));
        assertFalse(Arrays.equals(wire, proof), "sanity");
        String everything = new String(wire, StandardCharsets.ISO_8859_1) + new String(challenge, StandardCharsets.ISO_8859_1)
                + new String(proof, StandardCharsets.ISO_8859_1);
        assertFalse(everything.contains(new String(SECRET, StandardCharsets.ISO_8859_1)), "the secret is not on the wire");
    }

    @Test
    void aWorkerWithAWrongSecretIsRefused() {
        JoinHandshake.DriverSide driver = new JoinHandshake.DriverSide(SECRET, HELLO);
        JoinHandshake.WorkerSide worker = new JoinHandshake.WorkerSide(OTHER_SECRET, HELLO, "worker-1", INFO);
        assertFalse(driver.accept(JoinHandshake.Response.decode(worker.respond(driver.challenge()).encode())));
        assertEquals("no response was accepted: there is no proof to send",
                assertThrows(IllegalStateException.class, driver::proof).getMessage());
    }

    @Test
    void aDriverWithoutTheSecretIsRefusedByTheWorker() {
        // An impostor driver cannot compute a proof: neither guessing nor replaying another session's proof works.
        JoinHandshake.WorkerSide worker = new JoinHandshake.WorkerSide(SECRET, HELLO, "worker-1", INFO);
        JoinHandshake.DriverSide impostor = new JoinHandshake.DriverSide(OTHER_SECRET, HELLO);
        JoinHandshake.Response response = worker.respond(impostor.challenge());
        assertFalse(impostor.accept(response));
        assertFalse(worker.acceptDriver(new byte[JoinHandshake.MAC_BYTES]));

        JoinHandshake.DriverSide earlierDriver = new JoinHandshake.DriverSide(SECRET, HELLO);
        JoinHandshake.WorkerSide earlierWorker = new JoinHandshake.WorkerSide(SECRET, HELLO, "worker-1", INFO);
        assertTrue(earlierDriver.accept(earlierWorker.respond(earlierDriver.challenge())));
        assertFalse(worker.acceptDriver(earlierDriver.proof()), "a recorded proof answers another worker nonce");

        JoinHandshake.DriverSide otherSecret = new JoinHandshake.DriverSide(OTHER_SECRET, HELLO);
        JoinHandshake.WorkerSide otherWorker = new JoinHandshake.WorkerSide(OTHER_SECRET, HELLO, "worker-1", INFO);
        assertTrue(otherSecret.accept(otherWorker.respond(otherSecret.challenge())));
        assertFalse(worker.acceptDriver(otherSecret.proof()));
    }

    @Test
    void aReplayedResponseIsRefused() {
        JoinHandshake.DriverSide first = new JoinHandshake.DriverSide(SECRET, HELLO);
        JoinHandshake.WorkerSide worker = new JoinHandshake.WorkerSide(SECRET, HELLO, "worker-1", INFO);
        byte[] recorded = worker.respond(first.challenge()).encode();
        assertTrue(first.accept(JoinHandshake.Response.decode(recorded)));
        assertFalse(first.accept(JoinHandshake.Response.decode(recorded)), "the same join accepts once");
        JoinHandshake.DriverSide second = new JoinHandshake.DriverSide(SECRET, HELLO);
        assertNotEquals(Arrays.toString(first.challenge()), Arrays.toString(second.challenge()), "fresh nonces");
        assertFalse(second.accept(JoinHandshake.Response.decode(recorded)), "a recorded response answers another challenge");
    }

    @Test
    void aTamperedResponseIsRefused() {
        JoinHandshake.DriverSide probe = new JoinHandshake.DriverSide(SECRET, HELLO);
        byte[] wire = new JoinHandshake.WorkerSide(SECRET, HELLO, "worker-1", INFO).respond(probe.challenge()).encode();
        // SBE: header 8, driver nonce, worker nonce, MAC (32 each), name (2-byte length), info (4-byte length)
        int nonceAt = 8 + 32;
        int macAt = nonceAt + 32;
        int nameAt = macAt + 32 + 2;
        int infoAt = nameAt + "worker-1".length() + 4;
        // Bits of the name, of the host name inside the info, of the worker nonce and of the MAC.
        for (int bit : new int[] {nameAt * 8, nameAt * 8 + 5, (wire.length - 3) * 8, nonceAt * 8 + 3, macAt * 8,
                (macAt + 31) * 8 + 7}) {
            JoinHandshake.DriverSide driver = new JoinHandshake.DriverSide(SECRET, HELLO);
            byte[] honest = new JoinHandshake.WorkerSide(SECRET, HELLO, "worker-1", INFO).respond(driver.challenge()).encode();
            assertFalse(driver.accept(JoinHandshake.Response.decode(flip(honest, bit))), "bit " + bit + " flipped");
        }
        // A worker that claims more than it signed: the same MAC over other info.
        JoinHandshake.DriverSide driver = new JoinHandshake.DriverSide(SECRET, HELLO);
        JoinHandshake.Response honest = new JoinHandshake.WorkerSide(SECRET, HELLO, "worker-1", INFO).respond(driver.challenge());
        byte[] bigger = new WorkerInfo("gpu-node-7", Map.of("zone", "a", "rack", "r12"), 64, TWO_GPUS).encode();
        byte[] honestWire = honest.encode();
        byte[] forged = ByteBuffer.allocate(infoAt + bigger.length).order(java.nio.ByteOrder.LITTLE_ENDIAN)
                .put(honestWire, 0, infoAt - 4).putInt(bigger.length).put(bigger).array();
        assertFalse(driver.accept(JoinHandshake.Response.decode(forged)));
        // The same response for a HELLO that said something else (another endpoint, pid or directory).
        JoinHandshake.DriverSide otherHello = new JoinHandshake.DriverSide(SECRET,
                "hello: worker-1 10.9.9.9:4000 pid 42 /dev/shm".getBytes(StandardCharsets.UTF_8));
        JoinHandshake.WorkerSide saidHello = new JoinHandshake.WorkerSide(SECRET, HELLO, "worker-1", INFO);
        assertFalse(otherHello.accept(saidHello.respond(otherHello.challenge())), "the MAC covers every HELLO byte");
    }

    @Test
    void malformedInputIsRejectedClearly() {
        assertEquals("a join secret needs at least 16 bytes, got 5", assertThrows(IllegalArgumentException.class,
                () -> new JoinHandshake.DriverSide("short".getBytes(StandardCharsets.UTF_8), HELLO)).getMessage());
        assertEquals("a worker name has 1 to 255 bytes of UTF-8, got 0", assertThrows(IllegalArgumentException.class,
                () -> new JoinHandshake.WorkerSide(SECRET, HELLO, "", INFO)).getMessage());
        JoinHandshake.WorkerSide worker = new JoinHandshake.WorkerSide(SECRET, HELLO, "w", INFO);
        assertEquals("respond to the driver's challenge first",
                assertThrows(IllegalStateException.class, () -> worker.acceptDriver(new byte[32])).getMessage());
        assertEquals("a challenge has 32 bytes, got 3",
                assertThrows(IllegalArgumentException.class, () -> worker.respond(new byte[3])).getMessage());
        byte[] wire = worker.respond(new byte[32]).encode();
        assertEquals("this worker side already responded; a join answers one challenge",
                assertThrows(IllegalStateException.class, () -> worker.respond(new byte[32])).getMessage());
        assertThrows(IllegalArgumentException.class, () -> JoinHandshake.Response.decode(Arrays.copyOf(wire, wire.length - 1)));
        assertThrows(IllegalArgumentException.class, () -> JoinHandshake.Response.decode(Arrays.copyOf(wire, wire.length + 1)));
        assertEquals("not a join response (template 5)", assertThrows(IllegalArgumentException.class,
                () -> JoinHandshake.Response.decode(flip(wire, 16))).getMessage());
        byte[] hugeName = wire.clone();
        hugeName[8 + 96 + 1] = 0x7f;
        assertThrows(IllegalArgumentException.class, () -> JoinHandshake.Response.decode(hugeName));
    }

    @Test
    void workerInfoHasAStableEncoding() {
        List<WorkerInfo.Gpu> one = List.of(new WorkerInfo.Gpu("G", 5, 0));
        WorkerInfo a = new WorkerInfo("h", Map.of("b", "2", "a", "1"), 4, one);
        java.util.LinkedHashMap<String, String> reversed = new java.util.LinkedHashMap<>();
        reversed.put("a", "1");
        reversed.put("b", "2");
        WorkerInfo b = new WorkerInfo("h", reversed, 4, one);
        assertEquals(a, b);
        assertArrayEquals(a.encode(), b.encode());
        assertEquals(List.of("a", "b"), List.copyOf(a.labels().keySet()), "sorted by key");
        // SBE, little-endian: header (block 4, template 1, schema 4711, version 1), 4 cores, a group of 1 GPU
        // (16-byte entries: 5 bytes, no peers, uuid "G"), a group of 2 labels a=1 b=2, host name "h"
        assertEquals("0400" + "0100" + "6712" + "0100" + "04000000" + "1000" + "0100" + "0500000000000000"
                + "0000000000000000" + "0100" + "47" + "0000" + "0200" + "0100" + "61" + "0100" + "31" + "0100" + "62"
                + "0100" + "32" + "0100" + "68", hex(a.encode()));
        assertEquals(a, WorkerInfo.decode(a.encode()));
        assertEquals(1, a.gpus().size());
        assertEquals(INFO, WorkerInfo.decode(INFO.encode()));
        assertTrue(INFO.peerAccess(0, 1) && INFO.peerAccess(1, 0) && !INFO.peerAccess(0, 0) && !INFO.peerAccess(1, 2));
        WorkerInfo none = new WorkerInfo("cpu-only", Map.of(), 1, List.of());
        assertEquals(none, WorkerInfo.decode(none.encode()));
        assertEquals(0, none.gpus().size());
    }

    @Test
    void workerInfoChecksItsValues() {
        assertEquals("cores must be >= 1, got 0", assertThrows(IllegalArgumentException.class,
                () -> new WorkerInfo("h", Map.of(), 0, List.of())).getMessage());
        assertEquals("GPU memory must be >= 0 bytes, got -1", assertThrows(IllegalArgumentException.class,
                () -> new WorkerInfo.Gpu("G", -1, 0)).getMessage());
        assertEquals("GPU uuid must have 1 to 255 bytes of UTF-8, has 0", assertThrows(IllegalArgumentException.class,
                () -> new WorkerInfo.Gpu("", 1, 0)).getMessage());
        assertEquals("hostName must have 1 to 255 bytes of UTF-8, has 0", assertThrows(IllegalArgumentException.class,
                () -> new WorkerInfo("", Map.of(), 1, List.of())).getMessage());
        assertEquals("label key must have 1 to 255 bytes of UTF-8, has 0", assertThrows(IllegalArgumentException.class,
                () -> new WorkerInfo("h", Map.of("", "x"), 1, List.of())).getMessage());
        assertThrows(UnsupportedOperationException.class, () -> INFO.labels().put("x", "y"));
        // A worker that lists one device twice (with peer access to itself) would fail every GPU compile of the driver.
        List<WorkerInfo.Gpu> twice = List.of(new WorkerInfo.Gpu("GPU-1", 5, 0b10),
                new WorkerInfo.Gpu("GPU-1", 5, 0b01));
        assertEquals("GPU 1 has the UUID GPU-1 of an earlier GPU: a worker lists each device once", assertThrows(
                IllegalArgumentException.class, () -> new WorkerInfo("h", Map.of(), 1, twice)).getMessage());
        byte[] twiceBytes = new WorkerInfo("h", Map.of(), 1, List.of(twice.getFirst(),
                new WorkerInfo.Gpu("GPU-2", 5, 0b01))).encode();
        twiceBytes[indexOf(twiceBytes, "GPU-2") + 4] = '1'; // the second UUID's last character: GPU-2 becomes GPU-1
        assertEquals("GPU 1 has the UUID GPU-1 of an earlier GPU: a worker lists each device once",
                assertThrows(IllegalArgumentException.class, () -> WorkerInfo.decode(twiceBytes)).getMessage());
        byte[] good = new WorkerInfo("h", Map.of("b", "2", "a", "1"), 4, List.of(new WorkerInfo.Gpu("G", 5, 0))).encode();
        byte[] outOfOrder = good.clone();
        // swap the labels a=1 and b=2 (each: length 1, key, length 1, value; 2-byte lengths)
        int labelA = indexOf(good, "\u0001\u0000a");
        System.arraycopy(good, labelA + 6, outOfOrder, labelA, 6);
        System.arraycopy(good, labelA, outOfOrder, labelA + 6, 6);
        assertEquals("not the stable encoding of a WorkerInfo: labels out of key order",
                assertThrows(IllegalArgumentException.class, () -> WorkerInfo.decode(outOfOrder)).getMessage());
        assertThrows(IllegalArgumentException.class, () -> WorkerInfo.decode(Arrays.copyOf(good, good.length - 1)));
        assertThrows(IllegalArgumentException.class, () -> WorkerInfo.decode(Arrays.copyOf(good, good.length + 1)));
        assertEquals("not a Kiln control message of schema 4711 version 1 (schema 0 version 0): run the same Kiln "
                + "version everywhere", assertThrows(IllegalArgumentException.class,
                () -> WorkerInfo.decode(new byte[8])).getMessage());
    }

    @Test
    void bothSidesDeriveTheSameKeysOnePerDirectionAndEachJoinItsOwn() {
        JoinHandshake.DriverSide driver = new JoinHandshake.DriverSide(SECRET, HELLO);
        JoinHandshake.WorkerSide worker = new JoinHandshake.WorkerSide(SECRET, HELLO, "worker-1", INFO);
        assertThrows(IllegalStateException.class, driver::keys);
        assertTrue(driver.accept(worker.respond(driver.challenge())));
        JoinHandshake.Keys d = driver.keys();
        JoinHandshake.Keys w = worker.keys();
        assertArrayEquals(d.send(), w.receive());
        assertArrayEquals(d.receive(), w.send());
        assertFalse(Arrays.equals(d.send(), d.receive()), "one key per direction");
        assertEquals(JoinHandshake.KEY_BYTES, d.send().length);
        JoinHandshake.DriverSide again = new JoinHandshake.DriverSide(SECRET, HELLO);
        JoinHandshake.WorkerSide workerAgain = new JoinHandshake.WorkerSide(SECRET, HELLO, "worker-1", INFO);
        assertTrue(again.accept(workerAgain.respond(again.challenge())));
        assertFalse(Arrays.equals(d.send(), again.keys().send()), "fresh nonces, fresh keys");
    }

    @Test
    void aResponseToAnotherChallengeIsRecognisedBeforeItsMacIsChecked() {
        JoinHandshake.DriverSide driver = new JoinHandshake.DriverSide(SECRET, HELLO);
        JoinHandshake.WorkerSide fooled = new JoinHandshake.WorkerSide(SECRET, HELLO, "worker-1", INFO);
        JoinHandshake.Response toForged = JoinHandshake.Response.decode(fooled.respond(JoinHandshake.nonce()).encode());
        assertFalse(driver.answers(toForged));
        JoinHandshake.WorkerSide honest = new JoinHandshake.WorkerSide(SECRET, HELLO, "worker-1", INFO);
        JoinHandshake.Response right = honest.respond(driver.challenge());
        assertTrue(driver.answers(right));
        assertTrue(driver.accept(right), "a response to a forged challenge did not use up the join");
    }

    private static int indexOf(byte[] haystack, String needle) {
        String s = new String(haystack, StandardCharsets.ISO_8859_1);
        int at = s.indexOf(needle);
        assertTrue(at >= 0, needle + " in " + hex(haystack));
        return at;
    }

    private static String hex(byte[] b) {
        return java.util.HexFormat.of().formatHex(b);
    }
}
