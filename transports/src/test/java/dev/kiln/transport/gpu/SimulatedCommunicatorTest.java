package dev.kiln.transport.gpu;

import dev.kiln.cuda.CudaException;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntConsumer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * NCCL's matching, ordering and grouping rules on {@link SimulatedCommunicator}s: ranks on threads of this JVM,
 * each on its own device of one simulated machine, operations enqueued on each device's default stream. Whether
 * an operation completed is read off its stream ({@code queryStream}); every wait is bounded.
 */
@Timeout(60)
class SimulatedCommunicatorTest {

    /** Long enough for a busy shared machine; every wait that must complete does so well before it. */
    private static final Duration PATIENT = Duration.ofSeconds(20);
    /** How long a stream whose operation cannot complete is watched, or a join that cannot finish is awaited. */
    private static final Duration SHORT = Duration.ofMillis(300);
    private static final long MEMORY = 64L << 20;

    private SimulatedDeviceOps gpus;
    private final List<Communicator> comms = new ArrayList<>();

    @AfterEach
    void closeAll() {
        comms.forEach(Communicator::close);
        if (gpus != null) {
            gpus.close();
        }
    }

    /** Joins {@code n} ranks, rank r on device r of a new machine of {@code n} devices, and waits until they are ready. */
    private List<Communicator> ranks(int n) {
        gpus = SimulatedDeviceOps.create(SimulatedGpus.of(n, MEMORY));
        byte[] id = gpus.newCommunicatorId();
        for (int r = 0; r < n; r++) {
            comms.add(gpus.joinCommunicator(n, id, r, r, 0));
        }
        for (Communicator c : comms) {
            c.awaitReady(PATIENT);
        }
        return comms;
    }

    /** Device memory on {@code device} holding {@code values}. */
    private long bytes(int device, int... values) {
        long p = gpus.allocate(device, Math.max(1, values.length));
        for (int i = 0; i < values.length; i++) {
            gpus.memory(p, values.length).set(ValueLayout.JAVA_BYTE, i, (byte) values[i]);
        }
        return p;
    }

    private byte[] content(long pointer, int n) {
        return gpus.memory(pointer, n).toArray(ValueLayout.JAVA_BYTE);
    }

    private boolean idle(int device) {
        return gpus.queryStream(device, 0);
    }

    /** Watches a device's default stream for {@link #SHORT}: false as soon as it runs dry. */
    private boolean staysBusy(int device) {
        long end = System.nanoTime() + SHORT.toNanos();
        while (System.nanoTime() - end < 0) {
            if (idle(device)) {
                return false;
            }
            LockSupport.parkNanos(1_000_000);
        }
        return true;
    }

    /** Runs {@code body(rank)} on one thread per rank and waits for them; returns what threw. */
    private static List<Throwable> onThreads(int ranks, IntConsumer body) throws InterruptedException {
        List<AtomicReference<Throwable>> thrown = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        for (int r = 0; r < ranks; r++) {
            int rank = r;
            AtomicReference<Throwable> t = new AtomicReference<>();
            thrown.add(t);
            threads.add(Thread.ofPlatform().name("rank-" + r).start(() -> {
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
        return thrown.stream().map(AtomicReference::get).filter(Objects::nonNull).toList();
    }

    @Test
    void sendAndReceiveCopyExactly() throws InterruptedException {
        List<Communicator> c = ranks(2);
        long out = bytes(0, 1, 2, 3, 4, 5);
        long in = bytes(1, 0, 0, 0, 0, 0);
        assertEquals(List.of(), onThreads(2, r -> {
            if (r == 0) {
                c.get(0).send(out, 5, 1);
            } else {
                c.get(1).recv(in, 5, 0);
            }
            c.get(r).synchronize();
        }));
        assertArrayEquals(new byte[] {1, 2, 3, 4, 5}, content(in, 5));
        assertEquals(1, c.get(1).rank());
        assertEquals(2, c.get(0).size());
        assertEquals(1, c.get(1).device());
        assertNull(c.get(0).asyncError());
    }

    @Test
    void anUngroupedSendDoesNotCompleteUntilItsReceiveIsPosted() throws InterruptedException {
        List<Communicator> c = ranks(2);
        long out = bytes(0, 7, 7, 7);
        long in = bytes(1, 0, 0, 0);
        assertEquals(List.of(), onThreads(1, r -> c.get(0).send(out, 3, 1)));
        assertTrue(staysBusy(0), "the send waits on its stream for a receive");
        assertArrayEquals(new byte[3], content(in, 3));
        assertEquals(List.of(), onThreads(1, r -> {
            c.get(1).recv(in, 3, 0);
            c.get(1).synchronize();
        }));
        c.get(0).synchronize();
        assertTrue(idle(0));
        assertArrayEquals(new byte[] {7, 7, 7}, content(in, 3));
    }

    @Test
    void twoRanksThatBothSendFirstDeadlockUntilAborted() throws InterruptedException {
        List<Communicator> c = ranks(2);
        long[] buffers = {bytes(0, 1), bytes(1, 2)};
        assertEquals(List.of(), onThreads(2, r -> {
            c.get(r).send(buffers[r], 1, 1 - r);
            c.get(r).recv(buffers[r], 1, 1 - r);
        }));
        assertTrue(staysBusy(0), "rank 0's send waits for a receive that rank 1 issues after its own send");
        assertTrue(staysBusy(1));
        assertNull(c.get(0).asyncError(), "NCCL does not see a deadlock");
        assertEquals(List.of(), onThreads(2, r -> {
            c.get(r).abort();
            c.get(r).synchronize();
        }));
        assertTrue(idle(0));
        assertTrue(idle(1));
        assertEquals("simulated NCCL rank 0 is aborted",
                assertThrows(IllegalStateException.class, () -> c.get(0).recv(buffers[0], 1, 1)).getMessage());
    }

    @Test
    void aGroupedExchangeCompletes() throws InterruptedException {
        List<Communicator> c = ranks(2);
        long[] out = {bytes(0, 10, 11), bytes(1, 20, 21)};
        long[] in = {bytes(0, 0, 0), bytes(1, 0, 0)};
        assertEquals(List.of(), onThreads(2, r -> {
            c.get(r).groupStart();
            c.get(r).send(out[r], 2, 1 - r);
            c.get(r).recv(in[r], 2, 1 - r);
            c.get(r).groupEnd();
            c.get(r).synchronize();
        }));
        assertArrayEquals(new byte[] {20, 21}, content(in[0], 2));
        assertArrayEquals(new byte[] {10, 11}, content(in[1], 2));
    }

    @Test
    void sendingToItselfNeedsAGroup() {
        Communicator solo = ranks(1).getFirst();
        long out = bytes(0, 5, 6);
        long in = bytes(0, 0, 0);
        solo.groupStart();
        solo.groupStart();
        solo.send(out, 2, 0);
        solo.groupEnd();
        solo.recv(in, 2, 0);
        solo.groupEnd();
        solo.synchronize();
        assertArrayEquals(new byte[] {5, 6}, content(in, 2));

        long again = bytes(0, 0, 0);
        solo.send(out, 2, 0);
        solo.recv(again, 2, 0);
        assertTrue(staysBusy(0), "the ungrouped send waits for a receive queued behind it on its own stream");
        assertArrayEquals(new byte[2], content(again, 2));
        solo.abort();
        solo.synchronize();
        assertTrue(idle(0));
    }

    @Test
    void operationsOfAPairMatchInIssueOrderWhateverTheGrouping() throws InterruptedException {
        List<Communicator> c = ranks(2);
        long first = bytes(0, 1, 1);
        long second = bytes(0, 2, 2);
        long x = bytes(1, 0, 0);
        long y = bytes(1, 0, 0);
        assertEquals(List.of(), onThreads(2, r -> {
            if (r == 0) {
                c.get(0).groupStart();
                c.get(0).send(first, 2, 1);
                c.get(0).send(second, 2, 1);
                c.get(0).groupEnd();
            } else {
                c.get(1).recv(x, 2, 0);
                c.get(1).recv(y, 2, 0);
            }
            c.get(r).synchronize();
        }));
        assertArrayEquals(new byte[] {1, 1}, content(x, 2));
        assertArrayEquals(new byte[] {2, 2}, content(y, 2));
    }

    @Test
    void sizesThatDisagreePutTheReceiverInErrorAndHangUntilAborted() throws InterruptedException {
        List<Communicator> c = ranks(2);
        long out = gpus.allocate(0, 8);
        long in = gpus.allocate(1, 8);
        assertEquals(List.of(), onThreads(2, r -> {
            if (r == 0) {
                c.get(0).send(out, 8, 1);
            } else {
                c.get(1).recv(in, 4, 0);
            }
        }));
        long deadline = System.nanoTime() + PATIENT.toNanos();
        while (c.get(1).asyncError() == null && System.nanoTime() - deadline < 0) {
            LockSupport.parkNanos(1_000_000);
        }
        String error = c.get(1).asyncError();
        assertTrue(error != null && error.startsWith("ncclInvalidUsage: rank 0 sent 8 bytes to rank 1, whose matching"
                + " receive asks for 4"), error);
        assertTrue(staysBusy(0), "the mismatched pair does not complete");
        assertFalse(idle(1));
        c.forEach(Communicator::abort);
        c.get(0).synchronize();
        c.get(1).synchronize();
        assertTrue(idle(0));
        assertTrue(idle(1));
    }

    /** Two elements of every type per rank; the sums are worked out by hand in {@link #sum}. */
    @ParameterizedTest
    @ValueSource(ints = {2, 3, 4})
    void allReduceSumsEveryTypeExactly(int n) throws InterruptedException {
        List<Communicator> c = ranks(n);
        DType[] types = DType.values();
        long[][] in = new long[n][types.length];
        long[][] out = new long[n][types.length];
        for (int r = 0; r < n; r++) {
            for (DType t : types) {
                byte[] input = input(t, r);
                in[r][t.ordinal()] = gpus.allocate(r, input.length);
                gpus.memory(in[r][t.ordinal()], input.length).copyFrom(MemorySegment.ofArray(input));
                out[r][t.ordinal()] = t == DType.F16 ? in[r][t.ordinal()] : gpus.allocate(r, input.length);
            }
        }
        assertEquals(List.of(), onThreads(n, r -> {
            Communicator comm = c.get(r);
            comm.groupStart();
            comm.allReduce(in[r][DType.F32.ordinal()], out[r][DType.F32.ordinal()], 2, DType.F32);
            comm.allReduce(in[r][DType.F64.ordinal()], out[r][DType.F64.ordinal()], 2, DType.F64);
            comm.groupEnd();
            for (DType t : types) {
                if (t != DType.F32 && t != DType.F64) {
                    comm.allReduce(in[r][t.ordinal()], out[r][t.ordinal()], 2, t);
                }
            }
            comm.synchronize();
        }));
        for (int r = 0; r < n; r++) {
            for (DType t : types) {
                int bytes = 2 * t.byteSize();
                assertArrayEquals(sum(t, n), content(out[r][t.ordinal()], bytes), t + " on rank " + r + " of " + n);
                if (t != DType.F16) {
                    assertArrayEquals(input(t, r), content(in[r][t.ordinal()], bytes), "the input is unchanged");
                }
            }
        }
    }

    private static ByteBuffer le(DType t) {
        return ByteBuffer.allocate(2 * t.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static short bf16(float f) {
        return (short) (Float.floatToRawIntBits(f) >>> 16); // exact for the values used here
    }

    /** Rank r's two elements. */
    private static byte[] input(DType t, int r) {
        ByteBuffer b = le(t);
        switch (t) {
            case F32 -> b.putFloat(r * 10 + 0.25f).putFloat(-r * 0.5f);
            case F64 -> b.putDouble(r * 1e12 + 0.5).putDouble(-r * 0.125);
            case I32 -> b.putInt(Integer.MAX_VALUE - r).putInt(-7 * r);
            case I64 -> b.putLong(Long.MAX_VALUE - r).putLong(r * 1_000_000_000_000L);
            case I8 -> b.put((byte) (100 + r)).put((byte) -r);
            case U8 -> b.put((byte) (200 + r)).put((byte) r);
            case F16 -> b.putShort(Float.floatToFloat16(r == 0 ? 2048f : 1f)).putShort(Float.floatToFloat16(0.5f));
            case BF16 -> b.putShort(bf16(r == 0 ? 256f : 1f)).putShort(bf16(0.25f * (r + 1)));
        }
        return b.array();
    }

    /**
     * The sums over {@code n} ranks. Integers wrap. F16 and BF16 accumulate in float and round once, to nearest even:
     * 2048 + (n - 1) in F16 (a step of 2 there) is 2048 (2049, a tie, goes to the even 2048), 2050, 2052 (2051 goes to
     * the even 2052), where rounding after every addition would stay at 2048; 256 + (n - 1) in BF16 likewise.
     */
    private static byte[] sum(DType t, int n) {
        int tri = n * (n - 1) / 2;
        ByteBuffer b = le(t);
        switch (t) {
            case F32 -> b.putFloat(10f * tri + 0.25f * n).putFloat(-0.5f * tri);
            case F64 -> b.putDouble(1e12 * tri + 0.5 * n).putDouble(-0.125 * tri);
            case I32 -> b.putInt(n * Integer.MAX_VALUE - tri).putInt(-7 * tri);
            case I64 -> b.putLong(n * Long.MAX_VALUE - tri).putLong(tri * 1_000_000_000_000L);
            case I8 -> b.put((byte) (100 * n + tri)).put((byte) -tri);
            case U8 -> b.put((byte) (200 * n + tri)).put((byte) tri);
            case F16 -> b.putShort(Float.floatToFloat16(new float[] {0, 0, 2048, 2050, 2052}[n]))
                    .putShort(Float.floatToFloat16(0.5f * n));
            case BF16 -> b.putShort(bf16(new float[] {0, 0, 256, 258, 260}[n])).putShort(bf16(0.25f * n * (n + 1) / 2));
        }
        return b.array();
    }

    @Test
    void abortWakesASynchronizeBlockedOnAnotherThread() throws InterruptedException {
        List<Communicator> c = ranks(3);
        long buffer = gpus.allocate(1, 1);
        c.get(1).recv(buffer, 1, 0);
        AtomicReference<Throwable> thrown = new AtomicReference<>();
        Thread waiter = Thread.ofPlatform().start(() -> {
            try {
                c.get(1).synchronize();
            } catch (Throwable t) {
                thrown.set(t);
            }
        });
        waiter.join(SHORT.toMillis());
        assertTrue(waiter.isAlive(), "the receive waits for a send that never comes");
        c.get(1).abort();
        waiter.join(PATIENT.toMillis());
        assertFalse(waiter.isAlive());
        assertNull(thrown.get(), "an aborted rank's operations count as completed");
        assertEquals("simulated NCCL rank 1 is aborted",
                assertThrows(IllegalStateException.class, () -> c.get(1).send(buffer, 1, 0)).getMessage());
        c.get(1).abort(); // idempotent
    }

    @Test
    void deviceTensorOverloadsUseItsAddressAndSize() throws InterruptedException {
        List<Communicator> c = ranks(2);
        DeviceTensor source = new DeviceTensor(0, gpus.allocate(0, 12), DType.I32, 0, 3);
        DeviceTensor target = new DeviceTensor(1, gpus.allocate(1, 12), DType.I32, 0, 3);
        gpus.memory(source.pointer(), 12).setAtIndex(ValueLayout.JAVA_INT, 2, 42);
        assertEquals(List.of(), onThreads(2, r -> {
            if (r == 0) {
                c.get(0).send(source, 1);
            } else {
                c.get(1).recv(target, 0);
            }
            c.get(r).synchronize();
        }));
        assertEquals(42, gpus.memory(target.pointer(), 12).getAtIndex(ValueLayout.JAVA_INT, 2));
    }

    @Test
    void twoRanksOnOneDeviceAreRefusedWhenJoining() {
        gpus = SimulatedDeviceOps.create(SimulatedGpus.of(2, MEMORY));
        byte[] id = gpus.newCommunicatorId();
        comms.add(gpus.joinCommunicator(2, id, 0, 0, 0));
        comms.add(gpus.joinCommunicator(2, id, 1, 0, 0));
        for (Communicator c : comms) {
            String message = assertThrows(IllegalStateException.class, () -> c.awaitReady(PATIENT)).getMessage();
            assertTrue(message.startsWith("simulated NCCL rank " + c.rank() + " of 2 on gpu0 could not join:"
                    + " ncclInvalidUsage: ranks 0 and 1 use the same GPU (" + gpus.deviceUuid(0) + ")"), message);
        }
    }

    @Test
    void aRankWhosePeerNeverJoinsFailsToBecomeReady() {
        gpus = SimulatedDeviceOps.create(SimulatedGpus.of(2, MEMORY));
        Communicator lonely = gpus.joinCommunicator(2, gpus.newCommunicatorId(), 0, 0, 0);
        comms.add(lonely);
        long buffer = gpus.allocate(0, 1);
        assertEquals("simulated NCCL rank 0 has not finished joining: call awaitReady first",
                assertThrows(IllegalStateException.class, () -> lonely.send(buffer, 1, 1)).getMessage());
        assertEquals("simulated NCCL rank 0 of 2 on gpu0 could not join: not every rank joined within PT0.3S",
                assertThrows(IllegalStateException.class, () -> lonely.awaitReady(SHORT)).getMessage());
        assertEquals("simulated NCCL rank 0 is aborted", assertThrows(IllegalStateException.class,
                () -> lonely.send(buffer, 1, 1)).getMessage(), "a rank that could not join is aborted");
    }

    @Test
    void aCorruptIdIsRefused() {
        gpus = SimulatedDeviceOps.create(SimulatedGpus.of(1, MEMORY));
        byte[] id = gpus.newCommunicatorId();
        assertEquals(Communicator.ID_BYTES, id.length);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> gpus.joinCommunicator(1, new byte[16], 0, 0, 0))
                .getMessage().startsWith("ncclInvalidArgument: not the id of a simulated communicator"));
        byte[] wrongMagic = id.clone();
        wrongMagic[0] ^= 1;
        assertThrows(IllegalArgumentException.class, () -> gpus.joinCommunicator(1, wrongMagic, 0, 0, 0));
        byte[] noPort = id.clone();
        MemorySegment.ofArray(noPort).set(ValueLayout.JAVA_INT_UNALIGNED, 20, 0);
        assertEquals("ncclInvalidArgument: corrupt communicator id",
                assertThrows(IllegalArgumentException.class, () -> gpus.joinCommunicator(1, noPort, 0, 0, 0)).getMessage());

        byte[] wrongSecret = id.clone();
        wrongSecret[4] ^= 1; // the rendezvous does not answer a stranger
        Communicator stranger = gpus.joinCommunicator(1, wrongSecret, 0, 0, 0);
        comms.add(stranger);
        String message = assertThrows(IllegalStateException.class, () -> stranger.awaitReady(PATIENT)).getMessage();
        assertTrue(message.startsWith("simulated NCCL rank 0 of 1 on gpu0 could not join: ncclSystemError"), message);

        Communicator member = gpus.joinCommunicator(1, id, 0, 0, 0);
        comms.add(member);
        member.awaitReady(PATIENT);
        assertNull(member.asyncError(), "the rendezvous still admits the rank that presents the secret");
    }

    @Test
    void misuseIsRefused() {
        List<Communicator> c = ranks(2);
        Communicator r0 = c.get(0);
        long buffer = gpus.allocate(0, 4);
        assertEquals("ncclInvalidArgument: rank 2 of 2 ranks", assertThrows(IllegalArgumentException.class,
                () -> gpus.joinCommunicator(2, gpus.newCommunicatorId(), 2, 0, 0)).getMessage());
        assertEquals("ncclInvalidArgument: peer 2 is not a rank of this communicator (0 to 1)",
                assertThrows(IllegalArgumentException.class, () -> r0.send(buffer, 1, 2)).getMessage());
        assertEquals("ncclInvalidArgument: ncclRecv of -1 bytes",
                assertThrows(IllegalArgumentException.class, () -> r0.recv(buffer, -1, 1)).getMessage());
        assertThrows(IllegalArgumentException.class, () -> r0.allReduce(buffer, buffer, -1, DType.F32));
        assertEquals("ncclInvalidUsage: groupEnd without groupStart on rank 0",
                assertThrows(IllegalStateException.class, r0::groupEnd).getMessage());
        assertEquals("cudaErrorInvalidValue", assertThrows(CudaException.class,
                () -> r0.send(buffer + (1 << 20), 4, 1)).errorName(), "a buffer must be device memory");
        assertEquals("SimulatedCommunicator[rank 0 of 2 on gpu0]", r0.toString());
        assertTrue(idle(0), "nothing refused was enqueued");

        assertTrue(r0.finish(PATIENT), "nothing pending: it ends in order");
        assertTrue(r0.finish(PATIENT), "idempotent");
        assertEquals("simulated NCCL rank 0 is finished",
                assertThrows(IllegalStateException.class, () -> r0.send(buffer, 1, 1)).getMessage());
        assertThrows(IllegalStateException.class, r0::groupStart);

        Communicator r1 = c.get(1);
        r1.abort();
        assertFalse(r1.finish(PATIENT), "an aborted rank did not end in order");
        assertEquals("simulated NCCL rank 1 is aborted",
                assertThrows(IllegalStateException.class, () -> r1.allReduce(buffer, buffer, 1, DType.F32)).getMessage());
    }

    @Test
    void finishAbortsWhatDoesNotCompleteInTime() {
        List<Communicator> c = ranks(2);
        long buffer = gpus.allocate(0, 4);
        c.get(0).send(buffer, 4, 1);
        assertFalse(c.get(0).finish(SHORT), "rank 1 never receives");
        assertTrue(idle(0), "the abort ended the pending send");
        assertNotNull(assertThrows(IllegalStateException.class, () -> c.get(0).send(buffer, 4, 1)));
    }
    /**
     * Rank 1 played over raw sockets, as a peer whose bytes cannot be trusted: an all-reduce contribution whose element
     * count times element size wraps around to the length of its data is malformed, not a contribution of that count.
     */
    @Test
    void aContributionWhoseSizeOverflowsIsMalformed() throws Exception {
        gpus = SimulatedDeviceOps.create(SimulatedGpus.of(2, MEMORY));
        byte[] id = gpus.newCommunicatorId();
        Communicator r0 = gpus.joinCommunicator(2, id, 0, 0, 0);
        comms.add(r0);
        MemorySegment idBytes = MemorySegment.ofArray(id);
        byte[] nonce = Arrays.copyOfRange(id, 4, 20);
        int magic = idBytes.get(ValueLayout.JAVA_INT_UNALIGNED, 0);
        int ports0;
        try (Socket rendezvous = new Socket(InetAddress.getLoopbackAddress(),
                idBytes.get(ValueLayout.JAVA_INT_UNALIGNED, 20))) {
            DataOutputStream out = new DataOutputStream(rendezvous.getOutputStream());
            out.writeInt(magic);
            out.write(nonce);
            out.writeInt(2);
            out.writeInt(1);
            out.writeInt(0);
            byte[] uuid = "GPU-rogue".getBytes(StandardCharsets.UTF_8);
            out.writeShort(uuid.length);
            out.write(uuid);
            out.flush();
            DataInputStream in = new DataInputStream(rendezvous.getInputStream());
            assertEquals(0, in.readInt());
            ports0 = in.readInt();
            assertEquals(0, in.readInt(), "rank 1 said it listens on no port");
        }
        try (Socket toRank0 = new Socket(InetAddress.getLoopbackAddress(), ports0)) {
            DataOutputStream out = new DataOutputStream(toRank0.getOutputStream());
            out.writeInt(magic);
            out.write(nonce);
            out.writeInt(1);
            out.flush();
            r0.awaitReady(PATIENT);
            long buffer = gpus.allocate(0, 4);
            r0.allReduce(buffer, buffer, 1, DType.F32);
            out.writeByte(3); // an all-reduce contribution
            out.writeLong(0);
            out.writeInt(12 + 4);
            out.writeInt(DType.F32.ordinal());
            out.writeLong((1L << 62) + 1); // times 4 bytes is 4 again, modulo 2^64
            out.writeFloat(1f);
            out.flush();
            long deadline = System.nanoTime() + PATIENT.toNanos();
            while (r0.asyncError() == null && System.nanoTime() - deadline < 0) {
                LockSupport.parkNanos(1_000_000);
            }
            assertEquals("ncclRemoteError: rank 1 sent malformed all-reduce contribution", r0.asyncError());
        }
    }
}
