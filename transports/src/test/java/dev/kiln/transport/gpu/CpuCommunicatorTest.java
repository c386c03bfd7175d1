package dev.kiln.transport.gpu;

import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.IntConsumer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Matching, blocking and grouping rules of the host communicator, on real threads with bounded waits. */
@Timeout(60)
class CpuCommunicatorTest {

    /** Long enough for a busy shared machine; every wait that must complete does so well before it. */
    private static final Duration PATIENT = Duration.ofSeconds(20);
    /** For runs that are meant to deadlock. */
    private static final Duration SHORT = Duration.ofMillis(300);

    private final Arena arena = Arena.ofShared();

    @AfterEach
    void free() {
        arena.close();
    }

    private MemorySegment bytes(int... values) {
        MemorySegment s = arena.allocate(values.length);
        for (int i = 0; i < values.length; i++) {
            s.set(ValueLayout.JAVA_BYTE, i, (byte) values[i]);
        }
        return s;
    }

    private static byte[] content(MemorySegment s) {
        return s.toArray(ValueLayout.JAVA_BYTE);
    }

    /** Runs {@code body(rank)} on one thread per rank; returns what each threw (null if nothing). */
    private static List<Throwable> onThreads(int ranks, IntConsumer body) throws InterruptedException {
        List<AtomicReference<Throwable>> thrown = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        for (int r = 0; r < ranks; r++) {
            int rank = r;
            AtomicReference<Throwable> t = new AtomicReference<>();
            thrown.add(t);
            threads.add(Thread.ofPlatform().start(() -> {
                try {
                    body.accept(rank);
                } catch (Throwable e) {
                    t.set(e);
                }
            }));
        }
        for (Thread t : threads) {
            t.join();
        }
        return thrown.stream().map(AtomicReference::get).toList();
    }

    @Test
    void sendAndReceiveCopyExactly() throws InterruptedException {
        List<CpuCommunicator> comms = CpuCommunicator.create(2, PATIENT);
        MemorySegment out = bytes(1, 2, 3, 4, 5);
        MemorySegment in = arena.allocate(5);
        List<Throwable> thrown = onThreads(2, r -> {
            if (r == 0) {
                comms.get(0).send(out.address(), 5, 1);
            } else {
                comms.get(1).recv(in.address(), 5, 0);
            }
        });
        assertEquals(List.of(), thrown.stream().filter(t -> t != null).toList());
        assertArrayEquals(new byte[] {1, 2, 3, 4, 5}, content(in));
        assertEquals(0, comms.get(0).rank());
        assertEquals(2, comms.get(1).size());
    }

    @Test
    void anUngroupedSendBlocksUntilItsReceiveIsPosted() throws InterruptedException {
        List<CpuCommunicator> comms = CpuCommunicator.create(2, PATIENT);
        MemorySegment out = bytes(7, 7, 7);
        MemorySegment in = arena.allocate(3);
        AtomicReference<Throwable> thrown = new AtomicReference<>();
        Thread sender = Thread.ofPlatform().start(() -> {
            try {
                comms.get(0).send(out.address(), 3, 1);
            } catch (Throwable t) {
                thrown.set(t);
            }
        });
        while (sender.getState() != Thread.State.TIMED_WAITING && sender.isAlive()) {
            Thread.onSpinWait(); // the sender parks, waiting for its match
        }
        assertTrue(sender.isAlive(), "the send has not returned without a receive");
        assertArrayEquals(new byte[3], content(in));
        comms.get(1).recv(in.address(), 3, 0);
        sender.join();
        assertNull(thrown.get());
        assertArrayEquals(new byte[] {7, 7, 7}, content(in));
    }

    @Test
    void twoRanksThatBothSendFirstDeadlockAndTimeOut() throws InterruptedException {
        List<CpuCommunicator> comms = CpuCommunicator.create(2, SHORT);
        MemorySegment a = bytes(1);
        MemorySegment b = bytes(2);
        List<Throwable> thrown = onThreads(2, r -> {
            CpuCommunicator c = comms.get(r);
            MemorySegment mine = r == 0 ? a : b;
            c.send(mine.address(), 1, 1 - r);
            c.recv(mine.address(), 1, 1 - r);
        });
        for (Throwable t : thrown) {
            assertTrue(t instanceof IllegalStateException, String.valueOf(t));
        }
        assertTrue(thrown.stream().anyMatch(t -> t.getMessage().matches("rank [01] waited PT0\\.3S for its send of 1 B "
                + "to rank [01] to be matched: the ranks issue their operations in orders that deadlock \\(or a peer "
                + "is gone\\)")), thrown::toString);
    }

    @Test
    void aGroupedExchangeCompletes() throws InterruptedException {
        List<CpuCommunicator> comms = CpuCommunicator.create(2, PATIENT);
        MemorySegment[] out = {bytes(10, 11), bytes(20, 21)};
        MemorySegment[] in = {arena.allocate(2), arena.allocate(2)};
        List<Throwable> thrown = onThreads(2, r -> {
            CpuCommunicator c = comms.get(r);
            c.groupStart();
            c.send(out[r].address(), 2, 1 - r);
            c.recv(in[r].address(), 2, 1 - r);
            c.groupEnd();
        });
        assertEquals(List.of(), thrown.stream().filter(t -> t != null).toList());
        assertArrayEquals(new byte[] {20, 21}, content(in[0]));
        assertArrayEquals(new byte[] {10, 11}, content(in[1]));
    }

    @Test
    void sendingToItselfNeedsAGroup() {
        CpuCommunicator solo = CpuCommunicator.create(1, SHORT).getFirst();
        MemorySegment out = bytes(5, 6);
        MemorySegment in = arena.allocate(2);
        solo.groupStart();
        solo.groupStart();
        solo.send(out.address(), 2, 0);
        solo.groupEnd();
        solo.recv(in.address(), 2, 0);
        solo.groupEnd();
        assertArrayEquals(new byte[] {5, 6}, content(in));

        IllegalStateException e = assertThrows(IllegalStateException.class, () -> solo.send(out.address(), 2, 0));
        assertTrue(e.getMessage().startsWith("rank 0 waited PT0.3S for its send of 2 B to rank 0"), e::getMessage);
        IllegalStateException after = assertThrows(IllegalStateException.class, () -> solo.recv(in.address(), 2, 0));
        assertTrue(after.getMessage().startsWith("rank 0: the communicator is aborted: rank 0 waited"), after::getMessage);
    }

    @Test
    void operationsOfAPairMatchInIssueOrderWhateverTheGrouping() throws InterruptedException {
        List<CpuCommunicator> comms = CpuCommunicator.create(2, PATIENT);
        MemorySegment first = bytes(1, 1);
        MemorySegment second = bytes(2, 2);
        MemorySegment x = arena.allocate(2);
        MemorySegment y = arena.allocate(2);
        List<Throwable> thrown = onThreads(2, r -> {
            CpuCommunicator c = comms.get(r);
            if (r == 0) {
                c.groupStart();
                c.send(first.address(), 2, 1);
                c.send(second.address(), 2, 1);
                c.groupEnd();
            } else {
                c.recv(x.address(), 2, 0);
                c.recv(y.address(), 2, 0);
            }
        });
        assertEquals(List.of(), thrown.stream().filter(t -> t != null).toList());
        assertArrayEquals(new byte[] {1, 1}, content(x));
        assertArrayEquals(new byte[] {2, 2}, content(y));
    }

    @Test
    void sizesThatDisagreeAbortBothRanks() throws InterruptedException {
        List<CpuCommunicator> comms = CpuCommunicator.create(2, PATIENT);
        MemorySegment buffer = arena.allocate(8);
        List<Throwable> thrown = onThreads(2, r -> {
            if (r == 0) {
                comms.get(0).send(buffer.address(), 8, 1);
            } else {
                comms.get(1).recv(buffer.address(), 4, 0);
            }
        });
        for (Throwable t : thrown) {
            assertTrue(t instanceof IllegalStateException && t.getMessage().endsWith("the communicator is aborted: rank 0 "
                    + "sends 8 B to rank 1, whose matching receive asks for 4 B: the pair issues its operations in "
                    + "different orders, or the sizes disagree"), String.valueOf(t));
        }
    }

    @Test
    void allReduceSumsEveryType() throws InterruptedException {
        int ranks = 3;
        List<CpuCommunicator> comms = CpuCommunicator.create(ranks, PATIENT);
        MemorySegment[] f32 = new MemorySegment[ranks];
        MemorySegment[] i64 = new MemorySegment[ranks];
        MemorySegment[] i8 = new MemorySegment[ranks];
        MemorySegment[] f16 = new MemorySegment[ranks];
        MemorySegment[] bf16 = new MemorySegment[ranks];
        MemorySegment[] f32out = new MemorySegment[ranks];
        for (int r = 0; r < ranks; r++) {
            f32[r] = arena.allocate(4 * 4);
            f32out[r] = arena.allocate(4 * 4);
            i64[r] = arena.allocate(8 * 2);
            i8[r] = arena.allocate(2);
            f16[r] = arena.allocate(2 * 2);
            bf16[r] = arena.allocate(2 * 2);
            for (int i = 0; i < 4; i++) {
                f32[r].setAtIndex(ValueLayout.JAVA_FLOAT, i, r * 10 + i);
            }
            i64[r].setAtIndex(ValueLayout.JAVA_LONG, 0, 1L << (40 + r));
            i64[r].setAtIndex(ValueLayout.JAVA_LONG, 1, -r);
            i8[r].set(ValueLayout.JAVA_BYTE, 0, (byte) 100);
            i8[r].set(ValueLayout.JAVA_BYTE, 1, (byte) -r);
            for (int i = 0; i < 2; i++) {
                f16[r].setAtIndex(ValueLayout.JAVA_SHORT, i, Float.floatToFloat16(0.5f + r + i));
                bf16[r].setAtIndex(ValueLayout.JAVA_SHORT, i,
                        (short) (Float.floatToRawIntBits(2f * (r + 1) + i) >>> 16));
            }
        }
        List<Throwable> thrown = onThreads(ranks, r -> {
            CpuCommunicator c = comms.get(r);
            c.allReduce(f32[r].address(), f32out[r].address(), 4, DType.F32);
            c.groupStart();
            c.allReduce(i64[r].address(), i64[r].address(), 2, DType.I64);
            c.allReduce(i8[r].address(), i8[r].address(), 2, DType.I8);
            c.groupEnd();
            c.allReduce(f16[r].address(), f16[r].address(), 2, DType.F16);
            c.allReduce(bf16[r].address(), bf16[r].address(), 2, DType.BF16);
        });
        assertEquals(List.of(), thrown.stream().filter(t -> t != null).toList());
        for (int r = 0; r < ranks; r++) {
            assertArrayEquals(new float[] {30, 33, 36, 39}, f32out[r].toArray(ValueLayout.JAVA_FLOAT));
            assertEquals(r * 10 + 3, f32[r].getAtIndex(ValueLayout.JAVA_FLOAT, 3), "the input is unchanged");
            assertArrayEquals(new long[] {(1L << 40) + (1L << 41) + (1L << 42), -3}, i64[r].toArray(ValueLayout.JAVA_LONG));
            assertArrayEquals(new byte[] {(byte) 300, -3}, content(i8[r]), "8-bit sums wrap");
            assertEquals(4.5f, Float.float16ToFloat(f16[r].getAtIndex(ValueLayout.JAVA_SHORT, 0)));
            assertEquals(7.5f, Float.float16ToFloat(f16[r].getAtIndex(ValueLayout.JAVA_SHORT, 1)));
            assertEquals(12f, Float.intBitsToFloat(bf16[r].getAtIndex(ValueLayout.JAVA_SHORT, 0) << 16));
            assertEquals(15f, Float.intBitsToFloat(bf16[r].getAtIndex(ValueLayout.JAVA_SHORT, 1) << 16));
        }
    }

    @Test
    void abortWakesEveryWaiter() throws InterruptedException {
        List<CpuCommunicator> comms = CpuCommunicator.create(3, PATIENT);
        MemorySegment buffer = arena.allocate(1);
        AtomicReference<Throwable> thrown = new AtomicReference<>();
        Thread waiter = Thread.ofPlatform().start(() -> {
            try {
                comms.get(1).recv(buffer.address(), 1, 0);
            } catch (Throwable t) {
                thrown.set(t);
            }
        });
        while (waiter.getState() != Thread.State.TIMED_WAITING && waiter.isAlive()) {
            Thread.onSpinWait();
        }
        assertTrue(waiter.isAlive(), "the receive waits for its send");
        comms.get(2).abort();
        waiter.join();
        assertEquals("rank 1: the communicator is aborted: rank 2 aborted the communicator", thrown.get().getMessage());
        assertThrows(IllegalStateException.class, () -> comms.get(0).send(buffer.address(), 1, 1));
    }

    @Test
    void deviceTensorOverloadsUseItsAddressAndSize() throws InterruptedException {
        List<CpuCommunicator> comms = CpuCommunicator.create(2, PATIENT);
        MemorySegment out = arena.allocate(3 * 4);
        MemorySegment in = arena.allocate(3 * 4);
        out.setAtIndex(ValueLayout.JAVA_INT, 2, 42);
        DeviceTensor source = new DeviceTensor(0, out.address(), DType.I32, 0, 3);
        DeviceTensor target = new DeviceTensor(0, in.address(), DType.I32, 0, 3);
        List<Throwable> thrown = onThreads(2, r -> {
            if (r == 0) {
                comms.get(0).send(source, 1);
            } else {
                comms.get(1).recv(target, 0);
            }
        });
        assertEquals(List.of(), thrown.stream().filter(t -> t != null).toList());
        assertEquals(42, in.getAtIndex(ValueLayout.JAVA_INT, 2));
    }

    @Test
    void misuseIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> CpuCommunicator.create(0, PATIENT));
        assertThrows(IllegalArgumentException.class, () -> CpuCommunicator.create(2, Duration.ZERO));
        CpuCommunicator c = CpuCommunicator.create(2, PATIENT).getFirst();
        assertEquals("peer 2 is not a rank of this communicator (0 to 1)",
                assertThrows(IllegalArgumentException.class, () -> c.send(0, 1, 2)).getMessage());
        assertThrows(IllegalArgumentException.class, () -> c.recv(0, -1, 1));
        assertEquals("groupEnd without groupStart on rank 0",
                assertThrows(IllegalStateException.class, c::groupEnd).getMessage());
        assertEquals("CpuCommunicator[rank 0 of 2]", c.toString());
        c.close();
        assertEquals("rank 0 of this CpuCommunicator is closed",
                assertThrows(IllegalStateException.class, () -> c.send(0, 1, 1)).getMessage());
    }
}
