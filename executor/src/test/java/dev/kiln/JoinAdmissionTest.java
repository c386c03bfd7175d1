package dev.kiln;

import dev.kiln.graph.ActorRef;
import io.aeron.ExclusivePublication;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Level;
import java.util.logging.LogRecord;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Joins under attack, on loopback: floods, injected endpoints, reflection, hijack, log flooding. */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class JoinAdmissionTest {

    @TempDir
    Path tmp;

    private byte[] secret;
    private Kiln kiln;
    private Attacker attacker;
    private LogCapture capture;
    private List<LogRecord> warnings;

    @BeforeEach
    void setUp() {
        secret = new byte[32];
        new SecureRandom().nextBytes(secret);
        capture = LogCapture.from(Level.WARNING);
        warnings = capture.records();
        kiln = Kiln.local(KilnOptions.defaults().hostName("host-a").joinSecret(secret).listen("127.0.0.1:0")
                .workerTimeout(Duration.ofSeconds(5)).runDirectory(tmp.resolve("run")));
        attacker = new Attacker(tmp.resolve("attacker"));
    }

    @AfterEach
    void tearDown() {
        try {
            attacker.close();
            kiln.close();
        } finally {
            capture.close();
        }
    }

    private KilnWorker join(String name, String listen) {
        return KilnWorker.join(KilnWorker.Options.of(kiln.joinEndpoint().orElseThrow(), secret).name(name)
                .hostName("host-" + name).listen(listen).runDirectory(tmp.resolve("run-" + name))
                .shmDirectory(tmp).timeout(Duration.ofSeconds(15)));
    }

    private static int freePort(String host) throws IOException {
        try (DatagramSocket s = new DatagramSocket(new InetSocketAddress(InetAddress.getByName(host), 0))) {
            return s.getLocalPort();
        }
    }

    /** 64 hellos from one source, each from its own session, used to fill every join slot the driver had. */
    @Test
    void aJoinFloodFromOneSourceDoesNotKeepALegitimateWorkerOut() throws Exception {
        String driver = kiln.joinEndpoint().orElseThrow();
        List<Attacker.RawSession> flood = new java.util.ArrayList<>();
        for (int i = 0; i < 64; i++) {
            Attacker.RawSession s = new Attacker.RawSession("127.0.0.2", driver, 0x1000 + i, 10);
            flood.add(s);
            s.send(Attacker.hello("flood-" + i, "127.0.0.2:" + (20_000 + i)));
        }
        try (KilnWorker w = join("legit", "127.0.0.1:0")) {
            assertEquals("legit", w.name());
        }
    }

    /** An endpoint is a host and a port: Aeron URI parameters after it never reach a URI. */
    @Test
    void aHelloEndpointWithAeronParametersIsRefusedAndAllocatesNothing() throws Exception {
        Path aeronDir;
        try (var dirs = Files.list(tmp.resolve("run"))) {
            aeronDir = dirs.filter(d -> d.getFileName().toString().startsWith("aeron-")).findFirst().orElseThrow();
        }
        long before = diskKiB(aeronDir);
        ExclusivePublication p = attacker.udp(kiln.joinEndpoint().orElseThrow(), null, 10);
        for (int i = 0; i < 4; i++) {
            assertTrue(Attacker.offer(p, Attacker.hello("inject-" + i, "127.0.0.1:" + (21_000 + i)
                    + "|sparse=false|term-length=67108864"), 10_000));
        }
        Thread.sleep(3_000);
        long grown = diskKiB(aeronDir) - before;
        assertTrue(grown < 32 * 1024, "the driver's Aeron directory grew by " + grown + " KiB");
    }

    /** Before a sender proved the secret, nothing goes to an address other than the one its hello came from. */
    @Test
    void aHelloNamingAThirdHostReflectsNothingToIt() throws Exception {
        try (DatagramSocket victim = new DatagramSocket(new InetSocketAddress(InetAddress.getByName("127.0.0.3"), 0))) {
            victim.setSoTimeout(3_000);
            try (Attacker.RawSession s = new Attacker.RawSession("127.0.0.2", kiln.joinEndpoint().orElseThrow(), 77, 10)) {
                s.send(Attacker.hello("reflector", "127.0.0.3:" + victim.getLocalPort()));
            }
            DatagramPacket packet = new DatagramPacket(new byte[65536], 65536);
            try {
                victim.receive(packet);
                throw new AssertionError("the driver sent " + packet.getLength() + " bytes to the third host");
            } catch (SocketTimeoutException expected) {
                // nothing arrived
            }
        }
    }

    /** Forged CHALLENGEs sprayed at a worker's listen port while it joins. */
    @Test
    void forgedChallengesSprayedAtAJoiningWorkerDoNotMakeItFail() throws Exception {
        int port = freePort("127.0.0.1");
        AtomicBoolean spraying = new AtomicBoolean(true);
        AtomicInteger sent = new AtomicInteger();
        Thread spray = Thread.ofPlatform().daemon(true).start(() -> {
            List<ExclusivePublication> ps = List.of(attacker.udp("127.0.0.1:" + port, null, 11),
                    attacker.udp("127.0.0.1:" + port, null, 11), attacker.udp("127.0.0.1:" + port, null, 11));
            SecureRandom random = new SecureRandom();
            while (spraying.get()) {
                for (ExclusivePublication p : ps) {
                    byte[] nonce = new byte[32];
                    random.nextBytes(nonce);
                    if (p.offer(new org.agrona.concurrent.UnsafeBuffer(Attacker.challenge(nonce))) > 0) {
                        sent.incrementAndGet();
                    }
                }
                java.util.concurrent.locks.LockSupport.parkNanos(200_000);
            }
        });
        try {
            // The sprayers connect as soon as the worker's endpoint exists: let them wait for it.
            Thread.sleep(500);
            for (int round = 0; round < 3; round++) {
                try (KilnWorker w = join("target-" + round, "127.0.0.1:" + port)) {
                    assertEquals("target-" + round, w.name());
                    KilnTestSupport.awaitTrue("the worker counts the forged messages", Duration.ofSeconds(20),
                            () -> w.controlStats().forged() > 0);
                }
                KilnTestSupport.awaitTrue("the worker left", Duration.ofSeconds(20),
                        () -> kiln.hosts().size() == 1);
            }
            assertTrue(sent.get() > 0, "the attacker reached the worker");
            assertTrue(warnings.stream().noneMatch(r -> r.getMessage().contains("does not know the join secret")),
                    "the driver blamed the worker: " + warnings);
        } finally {
            spraying.set(false);
            spray.join(5_000);
        }
    }

    /**
     * Control messages to a joined worker over UDP, captured on their way (an Aeron spy on the driver's media
     * driver sees what an on-path attacker sees), replayed, altered, and forged without the key: the worker drops
     * and counts every one, and runs none; forged ones at the driver's endpoint are dropped and counted there.
     */
    @Test
    void forgedReplayedAndMutatedControlMessagesOverUdpAreDroppedAndCounted() throws Exception {
        try (KilnWorker w = join("udp-victim", "127.0.0.1:0")) {
            kiln.awaitWorkers(1, Duration.ofSeconds(30));
            ActorRef<ChildControlTest.Victim> v = kiln.actor(ChildControlTest.Victim::new,
                    ActorOptions.host("host-udp-victim"));
            Path runDir;
            try (var dirs = Files.list(tmp.resolve("run"))) {
                runDir = dirs.filter(d -> d.getFileName().toString().startsWith("aeron-")).findFirst().orElseThrow();
            }
            try (Attacker onPath = new Attacker(runDir.toString())) {
                io.aeron.Subscription spy = onPath.aeron.addSubscription("aeron-spy:"
                        + new io.aeron.ChannelUriStringBuilder().media("udp").endpoint(w.endpoint()).build(),
                        dev.kiln.executor.ControlPlane.WORKER_STREAM);
                KilnTestSupport.awaitTrue("the spy is connected", Duration.ofSeconds(20), spy::isConnected);
                assertEquals(1, kiln.call(v, ChildControlTest.Victim::count).get(30, TimeUnit.SECONDS));
                List<byte[]> captured = Attacker.capture(spy, 2);
                ExclusivePublication toWorker = attacker.udp(w.endpoint(), null, dev.kiln.executor.ControlPlane.WORKER_STREAM);
                for (byte[] frame : captured) {
                    assertTrue(Attacker.offer(toWorker, frame, 10_000));
                    byte[] mutated = frame.clone();
                    mutated[12] ^= 1;
                    assertTrue(Attacker.offer(toWorker, mutated, 10_000));
                }
                assertTrue(Attacker.offer(toWorker, Attacker.shutdown(), 10_000));
                ExclusivePublication toDriver = attacker.udp(kiln.joinEndpoint().orElseThrow(), null,
                        dev.kiln.executor.ControlPlane.JOIN_STREAM);
                assertTrue(Attacker.offer(toDriver, Attacker.forged(new dev.kiln.executor.Message.Left("forged"), 99),
                        10_000));
                KilnTestSupport.awaitTrue(() -> "the worker counts the drops: " + w.controlStats(), Duration.ofSeconds(20),
                        () -> w.controlStats().replayed() >= 1 && w.controlStats().forged() >= 2);
                KilnTestSupport.awaitTrue(() -> "the driver counts the forged message: " + kiln.controlStats(),
                        Duration.ofSeconds(20), () -> kiln.controlStats().forged() >= 1);
            }
            assertEquals(2, kiln.call(v, ChildControlTest.Victim::count).get(30, TimeUnit.SECONDS),
                    "a replayed CALL ran again, or a forged SHUTDOWN stopped the worker");
            KilnTestSupport.awaitTrue(() -> "the worker's heartbeats carry its counts to the driver: "
                    + kiln.workerControlStats("udp-victim"), Duration.ofSeconds(20),
                    () -> kiln.workerControlStats("udp-victim").orElseThrow().replayed() >= 1);
        }
    }

    /** A dynamic call larger than a UDP control frame (2 MiB) crosses both ways, in authenticated chunks. */
    @Test
    void callsLargerThanAUdpControlFrameCross() throws Exception {
        try (KilnWorker w = join("big", "127.0.0.1:0")) {
            assertEquals("big", kiln.awaitWorkers(1, Duration.ofSeconds(30)).getFirst().name(), w.toString());
            ActorRef<ChildControlTest.Victim> v = kiln.actor(ChildControlTest.Victim::new, ActorOptions.host("host-big"));
            int n = 5 << 20;
            byte[] result = kiln.call(v, ChildControlTest.Victim::bytes, n).get(60, TimeUnit.SECONDS);
            assertEquals(n, result.length);
            assertEquals((byte) (n - 1), result[n - 1]);
            assertEquals(n, kiln.call(v, ChildControlTest.Victim::length, new byte[n]).get(60, TimeUnit.SECONDS));
        }
    }

    /** 10,000 bad payloads give a bounded number of warnings, each escaped. */
    @Test
    void badPayloadsGiveFewEscapedWarnings() throws Exception {
        ExclusivePublication p = attacker.udp(kiln.joinEndpoint().orElseThrow(), null, 10);
        byte[] evil = "\u001b[31mFAKE\nSEVERE: injected line".getBytes(java.nio.charset.StandardCharsets.UTF_8);
        for (int i = 0; i < 10_000; i++) {
            byte[] payload = i % 2 == 0 ? evil : Attacker.hello("evil\nname" + i, "x\r\ny");
            assertTrue(Attacker.offer(p, payload, 10_000));
        }
        Thread.sleep(2_000);
        assertTrue(warnings.size() <= 50, warnings.size() + " warnings for 10,000 bad payloads");
        for (LogRecord r : warnings) {
            String text = r.getMessage();
            assertTrue(text.chars().noneMatch(c -> c == '\n' || c == '\r' || c == 0x1b), "unescaped: " + text);
        }
    }

    private static long diskKiB(Path dir) throws Exception {
        Process du = new ProcessBuilder("du", "-sk", dir.toString()).redirectErrorStream(true).start();
        String out = new String(du.getInputStream().readAllBytes()).trim();
        assertTrue(du.waitFor(30, TimeUnit.SECONDS));
        return Long.parseLong(out.split("\\s+")[0]);
    }
}
