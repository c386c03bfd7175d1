package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import io.aeron.Aeron;
import io.aeron.ExclusivePublication;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link KilnOptions#authenticateData}: across hosts (a driver and a joined worker on loopback), a forged frame that
 * reaches the worker's data stream is dropped, counted and reported, and every value arrives exact; without the
 * option the same frame fails the graph.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class AuthenticatedDataTest {

    /** The first graph of a runtime: its first UDP channel's data stream to reader 0 (see UdpSettings). */
    private static final int FIRST_DATA_STREAM = 1_000_000;

    @TempDir
    Path tmp;

    /** Adds one to every byte, on the joined worker. */
    public static final class Inc {
        public byte[] inc(byte[] v) {
            byte[] out = v.clone();
            for (int i = 0; i < out.length; i++) {
                out[i]++;
            }
            return out;
        }
    }

    @Test
    void withAuthenticationAForgedFrameIsDroppedCountedAndReportedAndValuesArriveExact() throws Exception {
        List<String> warnings = new CopyOnWriteArrayList<>();
        Handler handler = new Handler() {
            @Override
            public void publish(LogRecord record) {
                warnings.add(record.getMessage());
            }

            @Override
            public void flush() {
            }

            @Override
            public void close() {
            }
        };
        Logger.getLogger("dev.kiln").addHandler(handler);
        try {
            runUnderAttack(true);
        } finally {
            Logger.getLogger("dev.kiln").removeHandler(handler);
        }
        assertTrue(warnings.stream().anyMatch(w -> w.contains("dropped 1 forged or mutated and 0 replayed frames")),
                "the worker reports what it dropped when the graph closes: " + warnings);
    }

    @Test
    void withoutAuthenticationTheSameFrameFailsTheGraph() {
        ActorDiedException e = assertThrows(ActorDiedException.class, () -> runUnderAttack(false));
        assertTrue(e.getMessage().contains("a channel has one writer and its stream may not be replaced"),
                e.getMessage());
    }

    /**
     * Runs 200 executions driver -> worker -> driver with byte arrays, sending one random frame to the worker's
     * data stream after the first.
     */
    private void runUnderAttack(boolean authenticate) throws Exception {
        byte[] secret = new byte[32];
        new SecureRandom().nextBytes(secret);
        try (Kiln kiln = Kiln.local(KilnOptions.defaults().runDirectory(tmp.resolve("run-a"))
                .shmDirectory(Files.createDirectories(tmp.resolve("shm-a")))
                .joinSecret(secret).hostName("host-a").workerTimeout(Duration.ofSeconds(5))
                .authenticateData(authenticate));
             KilnWorker worker = KilnWorker.join(KilnWorker.Options.of(kiln.joinEndpoint().orElseThrow(), secret)
                     .name("w-b").hostName("host-b").runDirectory(tmp.resolve("run-b"))
                     .shmDirectory(Files.createDirectories(tmp.resolve("shm-b"))));
             MediaDriver attackerDriver = MediaDriver.launchEmbedded(new MediaDriver.Context()
                     .aeronDirectoryName(tmp.resolve("attacker").toString()).threadingMode(ThreadingMode.SHARED)
                     .dirDeleteOnStart(true).dirDeleteOnShutdown(true));
             Aeron attacker = Aeron.connect(new Aeron.Context().aeronDirectoryName(attackerDriver.aeronDirectoryName()))) {
            kiln.awaitWorkers(1, Duration.ofSeconds(60));
            ActorRef<Inc> remote = kiln.actor(Inc::new, ActorOptions.host("host-b"));
            InputNode<byte[]> in = Graph.input();
            try (CompiledGraph<byte[], byte[]> g = kiln.compile(in, remote.bind(Inc::inc, in), CompileOptions.defaults()
                    .idle(IdleMode.BACKOFF).getTimeout(Duration.ofSeconds(30)))) {
                assertTrue(g.plan().toString().contains("AERON_UDP"), g.plan().toString());
                assertArrayEquals(new byte[] {2, 3}, g.execute(new byte[] {1, 2}).get());
                ExclusivePublication toWorker = attacker.addExclusivePublication("aeron:udp?endpoint="
                        + worker.endpoint(), FIRST_DATA_STREAM);
                KilnTestSupport.awaitTrue("the attacker's stream connected", Duration.ofSeconds(30),
                        toWorker::isConnected);
                byte[] forged = new byte[200];
                new SecureRandom().nextBytes(forged);
                KilnTestSupport.awaitTrue("the forged frame went out", Duration.ofSeconds(30),
                        () -> toWorker.offer(new UnsafeBuffer(forged)) > 0);
                for (int i = 0; i < 200; i++) {
                    byte[] x = new byte[1 + i * 151]; // up to 30 KB: several frames of 1408 bytes
                    for (int j = 0; j < x.length; j++) {
                        x[j] = (byte) (i + j * 7);
                    }
                    byte[] y = g.execute(x).get();
                    assertEquals(x.length, y.length);
                    for (int j = 0; j < x.length; j++) {
                        assertEquals((byte) (x[j] + 1), y[j], "execution " + i + ", element " + j);
                    }
                }
                toWorker.close();
            }
        }
    }
}
