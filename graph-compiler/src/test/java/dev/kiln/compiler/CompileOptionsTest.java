package dev.kiln.compiler;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;

import java.time.Duration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(30)
class CompileOptionsTest {

    private static final CompileOptions DEFAULTS = CompileOptions.defaults();

    @Test
    void defaults() {
        assertEquals(10, DEFAULTS.maxInflight());
        assertEquals(1L << 20, DEFAULTS.bufferBytes());
        assertEquals(Duration.ofSeconds(10), DEFAULTS.submitTimeout());
        assertEquals(Duration.ofSeconds(10), DEFAULTS.getTimeout());
        assertEquals(Duration.ofSeconds(5), DEFAULTS.teardownTimeout());
        assertEquals(IdleMode.BACKOFF, DEFAULTS.idle());
        assertEquals(0.9, DEFAULTS.gpuMemoryFraction());
        assertFalse(DEFAULTS.overlapGpuCommunication());
        assertFalse(DEFAULTS.checkViews());
        assertSame(ActorDeathPolicy.FAIL, DEFAULTS.onActorDeath());
        assertEquals(CompileOptions.AUTO_THREADS, DEFAULTS.actorThreads());
        assertSame(DEFAULTS, CompileOptions.defaults());
    }

    @Test
    void withersChangeOneValueAndCopy() {
        assertEquals(new CompileOptions(4, 1 << 20, Duration.ofSeconds(10), Duration.ofSeconds(10),
                Duration.ofSeconds(5), IdleMode.BACKOFF, true, 0.9, false, false, ActorDeathPolicy.FAIL, true, 0), DEFAULTS.maxInflight(4));
        assertEquals(new CompileOptions(10, 64, Duration.ofSeconds(10), Duration.ofSeconds(10),
                Duration.ofSeconds(5), IdleMode.BACKOFF, true, 0.9, false, false, ActorDeathPolicy.FAIL, true, 0), DEFAULTS.bufferBytes(64));
        assertEquals(new CompileOptions(10, 1 << 20, Duration.ofMillis(1), Duration.ofSeconds(10),
                Duration.ofSeconds(5), IdleMode.BACKOFF, true, 0.9, false, false, ActorDeathPolicy.FAIL, true, 0), DEFAULTS.submitTimeout(Duration.ofMillis(1)));
        assertEquals(new CompileOptions(10, 1 << 20, Duration.ofSeconds(10), Duration.ofNanos(1),
                Duration.ofSeconds(5), IdleMode.BACKOFF, true, 0.9, false, false, ActorDeathPolicy.FAIL, true, 0), DEFAULTS.getTimeout(Duration.ofNanos(1)));
        assertEquals(new CompileOptions(10, 1 << 20, Duration.ofSeconds(10), Duration.ofSeconds(10),
                Duration.ofMinutes(1), IdleMode.BACKOFF, true, 0.9, false, false, ActorDeathPolicy.FAIL, true, 0), DEFAULTS.teardownTimeout(Duration.ofMinutes(1)));
        assertEquals(new CompileOptions(10, 1 << 20, Duration.ofSeconds(10), Duration.ofSeconds(10),
                Duration.ofSeconds(5), IdleMode.BLOCKING, true, 0.9, false, false, ActorDeathPolicy.FAIL, true, 0), DEFAULTS.idle(IdleMode.BLOCKING));
        assertEquals(new CompileOptions(10, 1 << 20, Duration.ofSeconds(10), Duration.ofSeconds(10),
                Duration.ofSeconds(5), IdleMode.BACKOFF, true, 0.5, false, false, ActorDeathPolicy.FAIL, true, 0), DEFAULTS.gpuMemoryFraction(0.5));
        assertEquals(new CompileOptions(10, 1 << 20, Duration.ofSeconds(10), Duration.ofSeconds(10),
                Duration.ofSeconds(5), IdleMode.BACKOFF, true, 0.9, true, false, ActorDeathPolicy.FAIL, true, 0), DEFAULTS.overlapGpuCommunication(true));
        assertEquals(new CompileOptions(10, 1 << 20, Duration.ofSeconds(10), Duration.ofSeconds(10),
                Duration.ofSeconds(5), IdleMode.BACKOFF, true, 0.9, false, true, ActorDeathPolicy.FAIL, true, 0),
                DEFAULTS.checkViews(true));
        assertEquals(new CompileOptions(10, 1 << 20, Duration.ofSeconds(10), Duration.ofSeconds(10),
                Duration.ofSeconds(5), IdleMode.BACKOFF, true, 0.9, false, false, ActorDeathPolicy.FAIL, true, 3),
                DEFAULTS.actorThreads(3));
        assertEquals(CompileOptions.THREAD_PER_ACTOR, DEFAULTS.actorThreads(CompileOptions.THREAD_PER_ACTOR)
                .maxInflight(3).idle(IdleMode.SPIN).checkViews(true).statistics(false)
                .onActorDeath(ActorDeathPolicy.RESTART).actorThreads(), "the other withers keep actorThreads");
        assertTrue(DEFAULTS.checkViews(true).maxInflight(3).slotGrowth(false).gpuMemoryFraction(0.5).checkViews(),
                "the other withers keep checkViews");
        assertEquals(10, DEFAULTS.maxInflight(), "the defaults are immutable");
    }

    @Test
    void onActorDeathIsKeptByTheOtherWithers() {
        CompileOptions restart = DEFAULTS.onActorDeath(ActorDeathPolicy.RESTART);
        assertSame(ActorDeathPolicy.RESTART, restart.onActorDeath());
        CompileOptions changed = restart.maxInflight(2).bufferBytes(8).submitTimeout(Duration.ofSeconds(1))
                .getTimeout(Duration.ofSeconds(2)).teardownTimeout(Duration.ofSeconds(3)).idle(IdleMode.SPIN)
                .slotGrowth(false).gpuMemoryFraction(0.5).overlapGpuCommunication(true).checkViews(true);
        assertSame(ActorDeathPolicy.RESTART, changed.onActorDeath());
        assertEquals(ActorDeathPolicy.FAIL, changed.onActorDeath(ActorDeathPolicy.FAIL).onActorDeath());
        assertThrows(NullPointerException.class, () -> DEFAULTS.onActorDeath(null));
    }

    @Test
    void actorDeathPolicies() {
        assertTrue(ActorDeathPolicy.RESTART.restart());
        assertFalse(ActorDeathPolicy.FAIL.restart());
        assertEquals(3, ActorDeathPolicy.RESTART.maxRestarts());
        assertEquals(Duration.ofMinutes(1), ActorDeathPolicy.RESTART.window());
        assertEquals(Duration.ofSeconds(30), ActorDeathPolicy.RESTART.placementTimeout());
        ActorDeathPolicy custom = ActorDeathPolicy.RESTART.limit(10, Duration.ofMinutes(5))
                .placementTimeout(Duration.ofMinutes(2));
        assertEquals(new ActorDeathPolicy(true, 10, Duration.ofMinutes(5), Duration.ofMinutes(2)), custom);
        assertEquals("RESTART(at most 10 within PT5M, placement timeout PT2M)", custom.toString());
        assertEquals("FAIL", ActorDeathPolicy.FAIL.toString());
        rejects("maxRestarts must be >= 1, got 0", () -> ActorDeathPolicy.RESTART.limit(0, Duration.ofMinutes(1)));
        rejects("the restart window must be > 0, got PT0S", () -> ActorDeathPolicy.RESTART.limit(1, Duration.ZERO));
        rejects("placementTimeout must be > 0, got PT-1S",
                () -> ActorDeathPolicy.RESTART.placementTimeout(Duration.ofSeconds(-1)));
        rejects("a policy that does not restart takes no restart limit or timeout: use ActorDeathPolicy.FAIL",
                () -> new ActorDeathPolicy(false, 3, Duration.ZERO, Duration.ZERO));
        IllegalStateException never = assertThrows(IllegalStateException.class,
                () -> ActorDeathPolicy.FAIL.limit(3, Duration.ofMinutes(1)));
        assertTrue(never.getMessage().contains("never restarts") && never.getMessage().contains("RESTART"),
                never.getMessage());
        assertThrows(IllegalStateException.class, () -> ActorDeathPolicy.FAIL.placementTimeout(Duration.ofSeconds(1)));
    }

    @Test
    void withersKeepTheGpuOptions() {
        CompileOptions gpu = DEFAULTS.gpuMemoryFraction(0.25).overlapGpuCommunication(true);
        CompileOptions changed = gpu.maxInflight(2).bufferBytes(8).submitTimeout(Duration.ofSeconds(1))
                .getTimeout(Duration.ofSeconds(2)).teardownTimeout(Duration.ofSeconds(3)).idle(IdleMode.SPIN)
                .slotGrowth(false);
        assertEquals(0.25, changed.gpuMemoryFraction());
        assertTrue(changed.overlapGpuCommunication());
        assertEquals(new CompileOptions(2, 8, Duration.ofSeconds(1), Duration.ofSeconds(2), Duration.ofSeconds(3),
                IdleMode.SPIN, false, 0.25, true, false, ActorDeathPolicy.FAIL, true, 0), changed);
    }

    @Test
    void withersChain() {
        CompileOptions o = DEFAULTS.maxInflight(1).bufferBytes(Long.MAX_VALUE).idle(IdleMode.SPIN)
                .submitTimeout(Duration.ofDays(1));
        assertEquals(1, o.maxInflight());
        assertEquals(Long.MAX_VALUE, o.bufferBytes());
        assertEquals(IdleMode.SPIN, o.idle());
        assertEquals(Duration.ofDays(1), o.submitTimeout());
        assertEquals(Duration.ofSeconds(10), o.getTimeout());
        assertNotSame(DEFAULTS, DEFAULTS.maxInflight(10));
        assertEquals(DEFAULTS, DEFAULTS.maxInflight(10));
    }

    @Test
    void invalidValuesNameTheOption() {
        rejects("maxInflight must be >= 1, got 0", () -> DEFAULTS.maxInflight(0));
        rejects("maxInflight must be >= 1, got -3", () -> DEFAULTS.maxInflight(-3));
        rejects("bufferBytes must be >= 1, got 0", () -> DEFAULTS.bufferBytes(0));
        rejects("bufferBytes must be >= 1, got -1", () -> DEFAULTS.bufferBytes(-1));
        rejects("submitTimeout must be > 0, got PT0S", () -> DEFAULTS.submitTimeout(Duration.ZERO));
        rejects("getTimeout must be > 0, got PT-1S", () -> DEFAULTS.getTimeout(Duration.ofSeconds(-1)));
        rejects("teardownTimeout must be > 0, got PT0S", () -> DEFAULTS.teardownTimeout(Duration.ZERO));
        rejects("gpuMemoryFraction must be in (0, 1], got 0.0", () -> DEFAULTS.gpuMemoryFraction(0));
        rejects("gpuMemoryFraction must be in (0, 1], got 1.5", () -> DEFAULTS.gpuMemoryFraction(1.5));
        rejects("gpuMemoryFraction must be in (0, 1], got NaN", () -> DEFAULTS.gpuMemoryFraction(Double.NaN));
        assertEquals(1.0, DEFAULTS.gpuMemoryFraction(1).gpuMemoryFraction());
        rejects("actorThreads must be >= 1, or AUTO_THREADS (0), got -1", () -> DEFAULTS.actorThreads(-1));
        assertEquals(1, DEFAULTS.actorThreads(1).actorThreads());
    }

    @Test
    void nullValuesNameTheOption() {
        nullRejected("submitTimeout", () -> DEFAULTS.submitTimeout(null));
        nullRejected("getTimeout", () -> DEFAULTS.getTimeout(null));
        nullRejected("teardownTimeout", () -> DEFAULTS.teardownTimeout(null));
        nullRejected("idle", () -> DEFAULTS.idle(null));
    }

    private static void rejects(String message, Executable change) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, change);
        assertEquals(message, e.getMessage());
    }

    private static void nullRejected(String option, Executable change) {
        NullPointerException e = assertThrows(NullPointerException.class, change);
        assertTrue(e.getMessage().contains(option), e::getMessage);
    }
}
