package dev.kiln.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * NVRTC without a GPU: the diagnosis where libnvrtc is missing (CI), and compilation where it is
 * installed (NVRTC needs no device).
 */
class NvrtcTest {
    private static final MemorySegment NULL = MemorySegment.NULL;
    static final String ADD_ONE = """
            extern "C" __global__ void add_one(float* x, int n) {
                int i = blockIdx.x * blockDim.x + threadIdx.x;
                if (i < n) {
                    x[i] += 1.0f;
                }
            }
            """;

    @Test
    void missingLibnvrtcIsDiagnosedWithSonamesFoldersAndTheProperty() {
        assumeFalse(NvrtcLibrary.isLoaded(), "libnvrtc is loaded here");
        String reason = NvrtcLibrary.loadFailure();
        assertTrue(reason.startsWith("no libnvrtc: looked for libnvrtc.so.13, libnvrtc.so.12 on the dynamic linker path"),
                reason);
        for (String folder : List.of("/usr/local/cuda/lib64", "/usr/local/cuda-13*/lib64", "/usr/local/cuda-12*/lib64",
                "/usr/local/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib",
                "/usr/local/lib/python3*/site-packages/nvidia/cu13/lib",
                "/usr/local/lib/python3*/dist-packages/nvidia/cu12/lib")) {
            assertTrue(reason.contains(folder), folder + " missing from: " + reason);
        }
        assertTrue(reason.endsWith("; set -Dkiln.nvrtc.path=/path/to/libnvrtc.so.13 (the file or its folder)"), reason);
        assertFalse(Nvrtc.isAvailable());
        assertEquals(reason, Nvrtc.unavailableReason());
    }

    @Test
    void foldersStartWithTheCudartFoldersThenThePythonWheels() {
        List<String> folders = NvrtcLibrary.folders();
        assertEquals(CudaRuntime.FOLDERS, folders.subList(0, CudaRuntime.FOLDERS.size()));
        assertEquals("/usr/lib/python3/dist-packages/nvidia/cu12/lib", folders.getLast());
    }

    @Test
    void everyFacadeCallThrowsTheDiagnosis() {
        assumeFalse(Nvrtc.isAvailable(), "NVRTC is available here");
        List<Executable> calls = List.of(Nvrtc::version, () -> Nvrtc.compileToPtx(ADD_ONE, "add_one.cu", List.of()));
        for (Executable call : calls) {
            NativeUnavailableException e = assertThrows(NativeUnavailableException.class, call);
            assertEquals(Nvrtc.unavailableReason(), e.getMessage());
        }
    }

    @Test
    void everyRawBindingThrowsTheLoadFailure() {
        assumeFalse(NvrtcLibrary.isLoaded(), "libnvrtc is loaded here");
        List<Executable> calls = List.of(() -> NvrtcLibrary.nvrtcVersion(NULL, NULL),
                () -> NvrtcLibrary.nvrtcCreateProgram(NULL, NULL, NULL, 0, NULL, NULL),
                () -> NvrtcLibrary.nvrtcCompileProgram(NULL, 0, NULL), () -> NvrtcLibrary.nvrtcGetProgramLogSize(NULL, NULL),
                () -> NvrtcLibrary.nvrtcGetProgramLog(NULL, NULL), () -> NvrtcLibrary.nvrtcGetPTXSize(NULL, NULL),
                () -> NvrtcLibrary.nvrtcGetPTX(NULL, NULL), () -> NvrtcLibrary.nvrtcDestroyProgram(NULL),
                () -> NvrtcLibrary.nvrtcGetErrorString(0));
        for (Executable call : calls) {
            NativeUnavailableException e = assertThrows(NativeUnavailableException.class, call);
            assertEquals(NvrtcLibrary.loadFailure(), e.getMessage());
        }
    }

    @Test
    void exceptionCarriesCodeNameAndLog() {
        NvrtcException e = new NvrtcException("nvrtcCompileProgram", 6, "NVRTC_ERROR_COMPILATION",
                "add_one.cu(3): error: identifier \"j\" is undefined\n");
        assertEquals(6, e.code());
        assertEquals("NVRTC_ERROR_COMPILATION", e.errorName());
        assertTrue(e.log().contains("identifier \"j\""));
        assertEquals("nvrtcCompileProgram failed: NVRTC_ERROR_COMPILATION (6); program log:\n"
                + "add_one.cu(3): error: identifier \"j\" is undefined\n", e.getMessage());
        assertEquals("nvrtcGetPTX failed: NVRTC_ERROR_INVALID_PROGRAM (4)",
                new NvrtcException("nvrtcGetPTX", 4, "NVRTC_ERROR_INVALID_PROGRAM", "").getMessage());
    }

    @Test
    @Tag("gpu")
    void compilesAKernelToNulTerminatedPtx() {
        assumeTrue(Nvrtc.isAvailable(), Nvrtc.unavailableReason());
        int version = Nvrtc.version();
        assertTrue(version >= 11000 && version % 10 == 0, "1000 * major + 10 * minor, not " + version);
        byte[] ptx = Nvrtc.compileToPtx(ADD_ONE, "add_one.cu", List.of("--gpu-architecture=compute_75"));
        assertEquals(0, ptx[ptx.length - 1]);
        String text = new String(ptx, 0, ptx.length - 1, StandardCharsets.US_ASCII);
        assertTrue(text.contains(".entry add_one"), text);
    }

    @Test
    @Tag("gpu")
    void aCompileErrorCarriesTheProgramLog() {
        assumeTrue(Nvrtc.isAvailable(), Nvrtc.unavailableReason());
        NvrtcException e = assertThrows(NvrtcException.class, () -> Nvrtc.compileToPtx(
                ADD_ONE.replace("x[i] += 1.0f", "x[j] += 1.0f"), "broken.cu", List.of()));
        assertEquals(NvrtcLibrary.NVRTC_ERROR_COMPILATION, e.code());
        assertEquals("NVRTC_ERROR_COMPILATION", e.errorName());
        assertTrue(e.log().contains("broken.cu") && e.log().contains("\"j\""), e.log());
    }
}
