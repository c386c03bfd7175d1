package dev.kiln;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The options of a driver that accepts workers, and of a worker that joins: defaults, checks, parsing. */
class JoinOptionsTest {

    private static final byte[] SECRET = "0123456789abcdef0123456789abcdef".getBytes();

    @TempDir
    Path tmp;

    @Test
    void driverDefaultsAcceptNoWorkersAndListenOnLoopbackOnly() {
        KilnOptions o = KilnOptions.defaults();
        assertNull(o.joinSecret());
        assertFalse(o.acceptsWorkers());
        assertEquals("127.0.0.1:0", o.listen());
        assertEquals("localhost", o.hostName());
        assertEquals(Duration.ofSeconds(10), o.workerTimeout());
    }

    @Test
    void theSecretIsCopiedComparedByContentAndNeverPrinted() {
        byte[] secret = SECRET.clone();
        KilnOptions o = KilnOptions.defaults().joinSecret(secret);
        secret[0] = 'X';
        assertArrayEquals(SECRET, o.joinSecret());
        assertNotSame(o.joinSecret(), o.joinSecret());
        assertEquals(KilnOptions.defaults().joinSecret(SECRET.clone()), o);
        assertEquals(KilnOptions.defaults().joinSecret(SECRET.clone()).hashCode(), o.hashCode());
        assertFalse(o.toString().contains("0123456789abcdef"), o.toString());
        assertTrue(o.toString().contains("32 bytes"), o.toString());
    }

    @Test
    void badDriverOptionsAreRefusedWithTheRule() {
        IllegalArgumentException shortSecret = assertThrows(IllegalArgumentException.class,
                () -> KilnOptions.defaults().joinSecret(new byte[8]));
        assertTrue(shortSecret.getMessage().contains("at least 16 bytes"), shortSecret.getMessage());
        assertThrows(IllegalArgumentException.class, () -> KilnOptions.defaults().listen("127.0.0.1"));
        assertThrows(IllegalArgumentException.class, () -> KilnOptions.defaults().listen("127.0.0.1:70000"));
        assertThrows(IllegalArgumentException.class, () -> KilnOptions.defaults().hostName("a/b"));
        assertThrows(IllegalArgumentException.class, () -> KilnOptions.defaults().workerTimeout(Duration.ZERO));
        assertThrows(IllegalArgumentException.class, () -> KilnOptions.defaults().udp(1000, 1 << 22));
        assertThrows(IllegalArgumentException.class, () -> KilnOptions.defaults().udp(1408, 3 << 20));
        assertEquals(8192, KilnOptions.defaults().udp(8192, 1 << 20).udpMtu());
    }

    @Test
    void aDriverThatAcceptsNoWorkersSaysSoWhenAskedToWaitForThem() {
        try (Kiln kiln = Kiln.local(KilnOptions.defaults().runDirectory(tmp.resolve("run")))) {
            assertTrue(kiln.joinEndpoint().isEmpty());
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> kiln.awaitWorkers(1, Duration.ofSeconds(1)));
            assertTrue(e.getMessage().contains("joinSecret"), e.getMessage());
            assertEquals(1, kiln.hosts().size());
            assertEquals("driver", kiln.hosts().getFirst().name());
        }
    }

    @Test
    void aDriverWithASecretListensAtOnceAndTimesOutWaitingForWorkers() throws Exception {
        try (Kiln kiln = Kiln.local(KilnOptions.defaults().joinSecret(SECRET).runDirectory(tmp.resolve("run")))) {
            String endpoint = kiln.joinEndpoint().orElseThrow();
            assertTrue(endpoint.startsWith("127.0.0.1:") && !endpoint.endsWith(":0"), endpoint);
            java.util.concurrent.TimeoutException e = assertThrows(java.util.concurrent.TimeoutException.class,
                    () -> kiln.awaitWorkers(1, Duration.ofMillis(200)));
            assertTrue(e.getMessage().contains("0 of 1 workers joined") && e.getMessage().contains(endpoint),
                    e.getMessage());
        }
    }

    @Test
    void theWorkerCommandLineIsParsed() throws IOException {
        Path secret = Files.writeString(tmp.resolve("secret"), "0123456789abcdef0123456789abcdef\n");
        KilnWorker.Options o = KilnWorker.parse(new String[] {"--driver", "10.0.0.5:7400", "--secret-file",
                secret.toString(), "--host-name", "node-7", "--label", "zone=a", "--label", "role=enc=x",
                "--listen", "10.0.0.7:0", "--timeout", "2.5", "--shm-dir", "/tmp/shm"});
        assertEquals("10.0.0.5:7400", o.driver());
        assertArrayEquals(SECRET, o.secret(), "trailing whitespace is not part of the secret");
        assertEquals("node-7", o.hostName());
        assertEquals("node-7-" + ProcessHandle.current().pid(), o.name());
        assertEquals(Map.of("zone", "a", "role", "enc=x"), o.labels());
        assertEquals("10.0.0.7:0", o.listen());
        assertEquals(Duration.ofMillis(2500), o.timeout());
        assertEquals(Path.of("/tmp/shm"), o.shmDirectory());
        assertFalse(o.toString().contains("0123456789abcdef"), o.toString());
        assertEquals("w1", KilnWorker.parse(new String[] {"--driver", "h:1", "--secret-file", secret.toString(),
                "--name", "w1"}).name());
    }

    @Test
    void badWorkerCommandLinesSayWhatIsWrong() throws IOException {
        Path secret = Files.writeString(tmp.resolve("secret"), "0123456789abcdef");
        assertTrue(assertThrows(IllegalArgumentException.class, () -> KilnWorker.parse(new String[] {
                "--secret-file", secret.toString()})).getMessage().contains("--driver is required"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> KilnWorker.parse(new String[] {
                "--driver", "h:1", "--secret-file", secret.toString(), "--label", "novalue"})).getMessage()
                .contains("KEY=VALUE"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> KilnWorker.parse(new String[] {
                "--driver", "h:1", "--secret-file", secret.toString(), "--timeout", "-1"})).getMessage()
                .contains("--timeout"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> KilnWorker.parse(new String[] {
                "--driver", "h:1", "--nope", "x"})).getMessage().contains("unknown flag --nope"));
    }
}
