package dev.kiln.transport.gpu;

import dev.kiln.cuda.Cuda;
import dev.kiln.cuda.MemcpyKind;
import dev.kiln.cuda.NativeUnavailableException;
import dev.kiln.nccl.Nccl;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
    void oneRankSendsToItselfAndAllReduces() {
        assumeTrue(Cuda.isAvailable(), Cuda.unavailableReason());
        assumeTrue(Nccl.isAvailable(), Nccl.unavailableReason());
        long bytes = (long) COUNT * Float.BYTES;
        MemorySegment host = Cuda.mallocHost(bytes);
        long stream = Cuda.streamCreate(0);
        long send = 0;
        long recv = 0;
        try (NcclCommunicator comm = NcclCommunicator.join(1, NcclCommunicator.uniqueId(), 0, 0, stream)) {
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

    @Test
    void closedRankRefusesWork() {
        assumeTrue(Nccl.isAvailable(), Nccl.unavailableReason());
        NcclCommunicator comm = NcclCommunicator.join(1, NcclCommunicator.uniqueId(), 0, 0, 0);
        comm.close();
        comm.close();
        assertTrue(assertThrows(IllegalStateException.class, comm::synchronize).getMessage().contains("closed"));
    }
}
