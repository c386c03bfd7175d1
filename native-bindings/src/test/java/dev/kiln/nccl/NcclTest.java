package dev.kiln.nccl;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import dev.kiln.cuda.NativeCallException;
import dev.kiln.cuda.NativeUnavailableException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** What every machine without a usable NCCL (CI) must see. */
class NcclTest {
    private static final MemorySegment NULL = MemorySegment.NULL;

    @Test
    void unavailableWithADiagnosisThatSaysWhatToDo() {
        assumeFalse(Nccl.isAvailable(), "NCCL is available here");
        String reason = Nccl.unavailableReason();
        assertFalse(reason.isBlank());
        if (!NcclLibrary.isLoaded()) {
            assertTrue(reason.startsWith("no libnccl: looked for libnccl.so.2"), reason);
            assertTrue(reason.contains("/site-packages/nvidia/nccl/lib"), reason);
            assertTrue(reason.contains("set -Dkiln.nccl.path="), reason);
        }
    }

    @Test
    void everyFacadeCallThrowsTheDiagnosis() {
        assumeFalse(Nccl.isAvailable(), "NCCL is available here");
        List<Executable> calls = List.of(Nccl::version, Nccl::uniqueId, () -> Nccl.commInitRank(1, new byte[128], 0),
                () -> Nccl.commDestroy(1), () -> Nccl.commAbort(1), () -> Nccl.commAsyncError(1),
                () -> Nccl.send(1, 1, NcclDataType.FLOAT32, 0, 1, 0), () -> Nccl.recv(1, 1, NcclDataType.FLOAT32, 0, 1, 0),
                () -> Nccl.allReduce(1, 1, 1, NcclDataType.FLOAT32, NcclRedOp.SUM, 1, 0), Nccl::groupStart,
                Nccl::groupEnd, () -> Nccl.commInitRankNonBlocking(1, new byte[128], 0), () -> Nccl.commFinalize(1),
                () -> Nccl.lastError(0), () -> Nccl.allGather(1, 1, 1, NcclDataType.FLOAT32, 1, 0),
                () -> Nccl.reduceScatter(1, 1, 1, NcclDataType.FLOAT32, NcclRedOp.SUM, 1, 0));
        for (Executable call : calls) {
            NativeUnavailableException e = assertThrows(NativeUnavailableException.class, call);
            assertEquals(Nccl.unavailableReason(), e.getMessage());
        }
    }

    @Test
    void everyRawBindingThrowsTheLoadFailure() {
        assumeFalse(NcclLibrary.isLoaded(), "libnccl is loaded here");
        List<Executable> calls = List.of(() -> NcclLibrary.ncclGetVersion(NULL), () -> NcclLibrary.ncclGetUniqueId(NULL),
                () -> NcclLibrary.ncclCommInitRank(NULL, 1, NULL, 0), () -> NcclLibrary.ncclCommDestroy(NULL),
                () -> NcclLibrary.ncclCommAbort(NULL), () -> NcclLibrary.ncclCommGetAsyncError(NULL, NULL),
                () -> NcclLibrary.ncclSend(NULL, 1, 7, 0, NULL, NULL), () -> NcclLibrary.ncclRecv(NULL, 1, 7, 0, NULL, NULL),
                () -> NcclLibrary.ncclAllReduce(NULL, NULL, 1, 7, 0, NULL, NULL), NcclLibrary::ncclGroupStart,
                NcclLibrary::ncclGroupEnd, () -> NcclLibrary.ncclGetErrorString(0),
                () -> NcclLibrary.ncclCommInitRankConfig(NULL, 1, NULL, 0, NULL), () -> NcclLibrary.ncclCommFinalize(NULL),
                () -> NcclLibrary.ncclGetLastError(NULL), () -> NcclLibrary.ncclAllGather(NULL, NULL, 1, 7, NULL, NULL),
                () -> NcclLibrary.ncclReduceScatter(NULL, NULL, 1, 7, 0, NULL, NULL));
        for (Executable call : calls) {
            NativeUnavailableException e = assertThrows(NativeUnavailableException.class, call);
            assertEquals(NcclLibrary.loadFailure(), e.getMessage());
        }
    }

    @Test
    void uniqueIdLayoutIs128Bytes() {
        assertEquals(128, NcclLibrary.ncclUniqueId.byteSize());
        assertEquals(Nccl.UNIQUE_ID_BYTES, NcclLibrary.ncclUniqueId.byteSize());
    }

    @Test
    void configLayoutIsNccl217s() {
        // struct ncclConfig_v21700 in nccl.h.in of NCCL 2.17: size_t size; unsigned magic, version;
        // int blocking, cgaClusterSize, minCTAs, maxCTAs; const char* netName.
        StructLayout config = NcclLibrary.ncclConfig_t;
        assertEquals(40, config.byteSize());
        assertEquals(8, config.byteAlignment());
        List<String> fields = List.of("size", "magic", "version", "blocking", "cgaClusterSize", "minCTAs", "maxCTAs",
                "netName");
        List<Long> offsets = List.of(0L, 8L, 12L, 16L, 20L, 24L, 28L, 32L);
        for (int i = 0; i < fields.size(); i++) {
            assertEquals(offsets.get(i), config.byteOffset(MemoryLayout.PathElement.groupElement(fields.get(i))),
                    fields.get(i));
        }
    }

    @Test
    void nonBlockingConfigSetsBlockingToZeroAndLeavesTheRestUndefined() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment config = Nccl.nonBlockingConfig(arena);
            assertEquals(40, config.byteSize());
            assertEquals(40L, config.get(JAVA_LONG, 0));
            assertEquals(0xcafebeef, config.get(JAVA_INT, 8));
            assertEquals(21700, config.get(JAVA_INT, 12));
            assertEquals(0, config.get(JAVA_INT, 16));
            assertEquals(Integer.MIN_VALUE, config.get(JAVA_INT, 20));
            assertEquals(Integer.MIN_VALUE, config.get(JAVA_INT, 24));
            assertEquals(Integer.MIN_VALUE, config.get(JAVA_INT, 28));
            assertEquals(0L, config.get(JAVA_LONG, 32));
        }
    }

    @Test
    void anNcclErrorNamesItsResultAsNcclHDoes() {
        NcclException e = new NcclException("ncclSend", 4, "invalid argument (run with NCCL_DEBUG=WARN for details)");
        assertEquals("ncclSend failed: ncclInvalidArgument (4): invalid argument (run with NCCL_DEBUG=WARN for details)",
                e.getMessage());
        NativeCallException asNative = e;
        assertEquals("ncclSend", asNative.call());
        assertEquals(4, asNative.code());
        assertEquals("ncclInvalidArgument", asNative.errorName());
        assertEquals("ncclRemoteError", new NcclException("ncclGroupEnd", 6, "remote").errorName());
        assertEquals("ncclResult 99", new NcclException("ncclSend", 99, "?").errorName());
    }

    @Test
    void inProgressIsNotAFailureButOtherCodesAre() {
        assertEquals(0, Nccl.SUCCESS);
        assertEquals(7, Nccl.IN_PROGRESS);
        Nccl.checkAllowingInProgress(Nccl.SUCCESS, "ncclSend");
        Nccl.checkAllowingInProgress(Nccl.IN_PROGRESS, "ncclSend");
        RuntimeException e = assertThrows(RuntimeException.class, () -> Nccl.checkAllowingInProgress(4, "ncclSend"));
        if (NcclLibrary.isLoaded()) {
            assertEquals(4, assertInstanceOf(NcclException.class, e).code());
        } else {
            assertEquals(NcclLibrary.loadFailure(), assertInstanceOf(NativeUnavailableException.class, e).getMessage());
        }
    }

    @Test
    void enumsCarryTheirCValues() {
        int[] types = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
        int[] sizes = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2};
        NcclDataType[] values = NcclDataType.values();
        assertEquals(types.length, values.length);
        for (int i = 0; i < values.length; i++) {
            assertEquals(types[i], values[i].cValue(), values[i].name());
            assertEquals(sizes[i], values[i].bytes(), values[i].name());
        }
        assertEquals(7, NcclDataType.FLOAT32.cValue());
        assertEquals(9, NcclDataType.BFLOAT16.cValue());
        assertEquals(List.of(0, 1, 2, 3, 4),
                java.util.Arrays.stream(new NcclRedOp[] {NcclRedOp.SUM, NcclRedOp.PROD, NcclRedOp.MAX, NcclRedOp.MIN,
                        NcclRedOp.AVG}).map(NcclRedOp::cValue).toList());
    }

    @Test
    void folderPatternsIncludeThePythonNcclPackage() {
        assertTrue(NcclLibrary.folders().contains("/usr/local/lib/python3*/dist-packages/nvidia/nccl/lib"));
        assertEquals("/usr/local/cuda/lib64", NcclLibrary.folders().getFirst());
        assertEquals("/usr/lib/python3/dist-packages/nvidia/nccl/lib", NcclLibrary.folders().getLast());
    }
}
