package dev.kiln.transport.gpu;

import dev.kiln.cuda.Cuda;
import dev.kiln.cuda.MemcpyKind;
import dev.kiln.cuda.NativeUnavailableException;
import dev.kiln.nccl.Nccl;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The NCCL communicator. The GPU tests run only where CUDA and NCCL work and are reported as skipped
 * elsewhere; <b>they have not run on a GPU yet</b>.
 */
@Timeout(120)
class NcclCommunicatorTest {

    private static final int COUNT = 1024;
    private static final Duration READY = Duration.ofSeconds(60);

    @ParameterizedTest
    @EnumSource(DType.class)
    void everyElementTypeMapsToAnNcclTypeOfItsSize(DType dtype) {
        assertEquals(dtype.byteSize(), NcclCommunicator.type(dtype).bytes());
    }

    @Test
    void withoutNcclJoiningSaysWhy() {
        assumeFalse(Nccl.isAvailable(), "NCCL is available here");
        NativeUnavailableException e = assertThrows(NativeUnavailableException.class, NcclCommunicator::uniqueId);
        assertEquals(Nccl.unavailableReason(), e.getMessage());
        assertThrows(NativeUnavailableException.class, () -> NcclCommunicator.join(1, new byte[Nccl.UNIQUE_ID_BYTES], 0, 0, 0));
    }

    @Test
    @Tag("gpu")
    void oneRankSendsToItselfAndAllReduces() {
        assumeTrue(Cuda.isAvailable(), Cuda.unavailableReason());
        assumeTrue(Nccl.isAvailable(), Nccl.unavailableReason());
        long bytes = (long) COUNT * Float.BYTES;
        Cuda.setDevice(0); // a rank joins on a thread whose current device is its own
        MemorySegment host = Cuda.mallocHost(bytes);
        long stream = Cuda.streamCreate(0);
        long send = 0;
        long recv = 0;
        try (NcclCommunicator comm = NcclCommunicator.join(1, NcclCommunicator.uniqueId(), 0, 0, stream)) {
            comm.awaitReady(READY);
            send = Cuda.malloc(bytes);
            recv = Cuda.malloc(bytes);
            for (int i = 0; i < COUNT; i++) {
                host.setAtIndex(ValueLayout.JAVA_FLOAT, i, i * 0.5f);
            }
            Cuda.memcpy(send, host.address(), bytes, MemcpyKind.HOST_TO_DEVICE);
            Cuda.memset(recv, 0, bytes);

            DeviceTensor source = new DeviceTensor(0, send, DType.F32, stream, COUNT);
            DeviceTensor target = new DeviceTensor(0, recv, DType.F32, stream, COUNT);
            comm.groupStart();
            comm.send(source, 0);
            comm.recv(target, 0);
            comm.groupEnd();
            comm.synchronize();
            Cuda.memcpy(host.address(), recv, bytes, MemcpyKind.DEVICE_TO_HOST);
            for (int i = 0; i < COUNT; i++) {
                assertEquals(i * 0.5f, host.getAtIndex(ValueLayout.JAVA_FLOAT, i), "element " + i);
            }

            comm.allReduce(send, recv, COUNT, DType.F32);
            comm.synchronize();
            Cuda.memcpy(host.address(), recv, bytes, MemcpyKind.DEVICE_TO_HOST);
            assertEquals((COUNT - 1) * 0.5f, host.getAtIndex(ValueLayout.JAVA_FLOAT, COUNT - 1));
            assertEquals(0, comm.rank());
            assertEquals(1, comm.size());
            assertEquals(0, comm.device());
            assertNull(comm.asyncError());
            assertTrue(comm.finish(READY), "nothing pending: the rank ends in order");
        } finally {
            if (send != 0) {
                Cuda.free(send);
            }
            if (recv != 0) {
                Cuda.free(recv);
            }
            Cuda.streamDestroy(stream);
            Cuda.freeHost(host);
        }
    }

    /** Two ranks, each joining on its own thread with its device current, exchange in one group. */
    @Test
    @Tag("gpu")
    void twoRanksOnTwoGpusExchange() throws InterruptedException {
        assumeTrue(Cuda.isAvailable(), Cuda.unavailableReason());
        assumeTrue(Nccl.isAvailable(), Nccl.unavailableReason());
        assumeTrue(Cuda.deviceCount() >= 2, "one GPU only");
        byte[] id = NcclCommunicator.uniqueId();
        float[][] received = new float[2][];
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> ranks = new ArrayList<>();
        for (int r = 0; r < 2; r++) {
            int rank = r;
            ranks.add(Thread.ofPlatform().start(() -> {
                try {
                    Cuda.setDevice(rank);
                    long bytes = (long) COUNT * Float.BYTES;
                    long send = Cuda.malloc(bytes);
                    long recv = Cuda.malloc(bytes);
                    MemorySegment host = Cuda.mallocHost(bytes);
                    try (NcclCommunicator comm = NcclCommunicator.join(2, id, rank, rank, 0)) {
                        comm.awaitReady(READY);
                        for (int i = 0; i < COUNT; i++) {
                            host.setAtIndex(ValueLayout.JAVA_FLOAT, i, rank * 1000 + i);
                        }
                        Cuda.memcpy(send, host.address(), bytes, MemcpyKind.HOST_TO_DEVICE);
                        comm.groupStart();
                        comm.send(send, bytes, 1 - rank);
                        comm.recv(recv, bytes, 1 - rank);
                        comm.groupEnd();
                        comm.synchronize();
                        Cuda.memcpy(host.address(), recv, bytes, MemcpyKind.DEVICE_TO_HOST);
                        received[rank] = host.toArray(ValueLayout.JAVA_FLOAT);
                        assertTrue(comm.finish(READY));
                    } finally {
                        Cuda.free(send);
                        Cuda.free(recv);
                        Cuda.freeHost(host);
                    }
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                }
            }));
        }
        for (Thread t : ranks) {
            t.join(TimeUnit.SECONDS.toMillis(100));
        }
        if (failure.get() != null) {
            throw new AssertionError(failure.get());
        }
        assertEquals(1000f + 5, received[0][5], "rank 0 got rank 1's bytes");
        assertEquals(5f, received[1][5], "rank 1 got rank 0's bytes");
    }

    @Test
    @Tag("gpu")
    void aRankWhosePeerNeverJoinsTimesOut() {
        assumeTrue(Cuda.isAvailable(), Cuda.unavailableReason());
        assumeTrue(Nccl.isAvailable(), Nccl.unavailableReason());
        Cuda.setDevice(0);
        NcclCommunicator lonely = NcclCommunicator.join(2, NcclCommunicator.uniqueId(), 0, 0, 0);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> lonely.awaitReady(Duration.ofMillis(500)));
        assertEquals("NCCL rank 0 of 2 on gpu0 could not join: not every rank joined within PT0.5S", e.getMessage());
        assertTrue(assertThrows(IllegalStateException.class, lonely::synchronize).getMessage().contains("aborted"));
    }

    @Test
    @Tag("gpu")
    void closedRankRefusesWork() {
        assumeTrue(Cuda.isAvailable(), Cuda.unavailableReason());
        assumeTrue(Nccl.isAvailable(), Nccl.unavailableReason());
        Cuda.setDevice(0);
        NcclCommunicator comm = NcclCommunicator.join(1, NcclCommunicator.uniqueId(), 0, 0, 0);
        comm.awaitReady(READY);
        comm.close();
        comm.close();
        assertEquals("NCCL rank 0 is aborted", assertThrows(IllegalStateException.class, comm::synchronize).getMessage(),
                "close aborts a rank that did not finish");
        assertFalse(comm.finish(READY));
    }

    @Test
    @Tag("gpu")
    void aRankJoinsOnlyOnAThreadWhoseCurrentDeviceIsItsOwn() {
        assumeTrue(Cuda.isAvailable(), Cuda.unavailableReason());
        assumeTrue(Cuda.deviceCount() >= 2, "one GPU only");
        Cuda.setDevice(0);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> NcclCommunicator.join(2, new byte[Nccl.UNIQUE_ID_BYTES], 1, 1, 0));
        assertTrue(e.getMessage().startsWith("NCCL rank 1 joins on gpu1, but the calling thread's current device is gpu0"),
                e.getMessage());
    }
}
