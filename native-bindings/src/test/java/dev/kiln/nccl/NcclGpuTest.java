package dev.kiln.nccl;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.kiln.cuda.Cuda;
import dev.kiln.cuda.MemcpyKind;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** One-rank communicator on GPU 0; runs only where NCCL is usable, skipped (not passed) elsewhere. */
@Tag("gpu")
class NcclGpuTest {
    private static final int COUNT = 1024;

    @Test
    void oneRankAllReduceAndSendToItself() {
        assumeTrue(Nccl.isAvailable(), Nccl.unavailableReason());
        assertTrue(Nccl.version() >= 20000);
        Cuda.setDevice(0);
        long bytes = (long) COUNT * Float.BYTES;
        MemorySegment host = Cuda.mallocHost(bytes);
        long send = Cuda.malloc(bytes);
        long recv = Cuda.malloc(bytes);
        long stream = Cuda.streamCreate(0);
        long comm = Nccl.commInitRank(1, Nccl.uniqueId(), 0);
        try {
            for (int i = 0; i < COUNT; i++) {
                host.setAtIndex(JAVA_FLOAT, i, i);
            }
            Cuda.memcpy(send, host.address(), bytes, MemcpyKind.HOST_TO_DEVICE);
            Nccl.allReduce(send, recv, COUNT, NcclDataType.FLOAT32, NcclRedOp.SUM, comm, stream);
            Cuda.streamSynchronize(stream);
            Cuda.memcpy(host.address(), recv, bytes, MemcpyKind.DEVICE_TO_HOST);
            assertEquals(COUNT - 1, host.getAtIndex(JAVA_FLOAT, COUNT - 1));

            Cuda.memset(recv, 0, bytes);
            Nccl.groupStart();
            Nccl.send(send, COUNT, NcclDataType.FLOAT32, 0, comm, stream);
            Nccl.recv(recv, COUNT, NcclDataType.FLOAT32, 0, comm, stream);
            Nccl.groupEnd();
            Cuda.streamSynchronize(stream);
            Cuda.memcpy(host.address(), recv, bytes, MemcpyKind.DEVICE_TO_HOST);
            assertEquals(7f, host.getAtIndex(JAVA_FLOAT, 7));
            assertEquals(NcclLibrary.ncclSuccess, Nccl.commAsyncError(comm));
        } finally {
            Nccl.commDestroy(comm);
            Cuda.streamDestroy(stream);
            Cuda.free(send);
            Cuda.free(recv);
            Cuda.freeHost(host);
        }
    }

    @Test
    void nonBlockingOneRankCommunicatorInitialisesReducesGathersScattersAndFinalises() {
        assumeTrue(Nccl.isAvailable(), Nccl.unavailableReason());
        Cuda.setDevice(0);
        long bytes = (long) COUNT * Float.BYTES;
        MemorySegment host = Cuda.mallocHost(bytes);
        long send = Cuda.malloc(bytes);
        long recv = Cuda.malloc(bytes);
        long stream = Cuda.streamCreate(0);
        long comm = Nccl.commInitRankNonBlocking(1, Nccl.uniqueId(), 0);
        try {
            assertNotEquals(0L, comm, "the communicator is returned at once");
            assertEquals(Nccl.SUCCESS, awaitQuiescent(comm), Nccl.lastError(comm));
            for (int i = 0; i < COUNT; i++) {
                host.setAtIndex(JAVA_FLOAT, i, i);
            }
            Cuda.memcpy(send, host.address(), bytes, MemcpyKind.HOST_TO_DEVICE);

            Nccl.allReduce(send, recv, COUNT, NcclDataType.FLOAT32, NcclRedOp.SUM, comm, stream);
            assertEquals(Nccl.SUCCESS, awaitQuiescent(comm), Nccl.lastError(comm));
            Cuda.streamSynchronize(stream);
            Cuda.memcpy(host.address(), recv, bytes, MemcpyKind.DEVICE_TO_HOST);
            assertEquals(COUNT - 1, host.getAtIndex(JAVA_FLOAT, COUNT - 1));

            Cuda.memset(recv, 0, bytes);
            Nccl.allGather(send, recv, COUNT, NcclDataType.FLOAT32, comm, stream);
            assertEquals(Nccl.SUCCESS, awaitQuiescent(comm), Nccl.lastError(comm));
            Cuda.streamSynchronize(stream);
            Cuda.memcpy(host.address(), recv, bytes, MemcpyKind.DEVICE_TO_HOST);
            assertEquals(11f, host.getAtIndex(JAVA_FLOAT, 11));

            Cuda.memset(recv, 0, bytes);
            Nccl.reduceScatter(send, recv, COUNT, NcclDataType.FLOAT32, NcclRedOp.MAX, comm, stream);
            assertEquals(Nccl.SUCCESS, awaitQuiescent(comm), Nccl.lastError(comm));
            Cuda.streamSynchronize(stream);
            Cuda.memcpy(host.address(), recv, bytes, MemcpyKind.DEVICE_TO_HOST);
            assertEquals(13f, host.getAtIndex(JAVA_FLOAT, 13));

            Nccl.commFinalize(comm);
            assertEquals(Nccl.SUCCESS, awaitQuiescent(comm), Nccl.lastError(comm));
        } finally {
            Nccl.commDestroy(comm);
            Cuda.streamDestroy(stream);
            Cuda.free(send);
            Cuda.free(recv);
            Cuda.freeHost(host);
        }
    }

    /** Polls until the communicator leaves IN_PROGRESS; the deadline only stops a hang. */
    private static int awaitQuiescent(long comm) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        int state;
        while ((state = Nccl.commAsyncError(comm)) == Nccl.IN_PROGRESS) {
            if (System.nanoTime() - deadline > 0) {
                fail("communicator still in progress after 120 s: " + Nccl.lastError(comm));
            }
            Thread.onSpinWait();
        }
        return state;
    }
}
