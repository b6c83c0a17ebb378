import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  labelForDiagnosis,
  loadHam10000MetadataDataset,
  loadIsic2019Dataset,
  loadIsic2020Dataset,
} from "../../lib/data/adapters.js";
import { loadDataset } from "../../lib/data/loadDataset.js";

let tmp: string;
async function writeJpeg(file: string): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp({ create: { width: 4, height: 4, channels: 3, background: "#884422" } }).jpeg().toFile(file);
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mlab-adapt-"));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("labelForDiagnosis", () => {
  it("maps diagnoses under both policies and names the nearest policy when unknown", () => {
    const dx = ["mel", "bcc", "akiec", "scc", "nv", "bkl", "df", "vasc"];
    expect(dx.map((d) => labelForDiagnosis(d, "malignant-vs-benign"))).toEqual(["malignant", "malignant", "malignant", "malignant", "benign", "benign", "benign", "benign"]);
    expect(dx.map((d) => labelForDiagnosis(d, "melanoma-vs-rest"))).toEqual(["malignant", "benign", "benign", "benign", "benign", "benign", "benign", "benign"]);
    expect(() => labelForDiagnosis("mel", "melanoma-vs-rst" as never)).toThrow(/did you mean "melanoma-vs-rest"/);
  });
});

describe("HAM10000 metadata adapter", () => {
  it("reads HAM10000_metadata.csv with images in the two part folders", async () => {
    const dir = path.join(tmp, "ham");
    await writeJpeg(path.join(dir, "HAM10000_images_part_1", "ISIC_0000001.jpg"));
    await writeJpeg(path.join(dir, "HAM10000_images_part_1", "ISIC_0000002.jpg"));
    await writeJpeg(path.join(dir, "HAM10000_images_part_2", "ISIC_0000003.jpg"));
    await writeJpeg(path.join(dir, "HAM10000_images_part_2", "ISIC_0000004.jpg"));
    fs.writeFileSync(
      path.join(dir, "HAM10000_metadata.csv"),
      "lesion_id,image_id,dx,dx_type,age,sex,localization,dataset\n" +
        "HAM_0000001,ISIC_0000001,bkl,histo,80.0,male,scalp,vidir_modern\n" +
        "HAM_0000001,ISIC_0000002,bkl,histo,80.0,male,scalp,vidir_modern\n" +
        "HAM_0000002,ISIC_0000003,bcc,histo,,female,back,rosendahl\n" +
        "HAM_0000003,ISIC_0000004,mela,histo,55,female,face,rosendahl\n" +
        "HAM_0000004,ISIC_0000005,mel,histo,55,female,face,rosendahl\n",
    );
    expect(loadDataset(dir).layout).toBe("ham10000");
    const { records, problems } = loadHam10000MetadataDataset(dir);
    expect(records.map((r) => [r.imageId, r.label, r.diagnosis, r.lesionId])).toEqual([
      ["ISIC_0000001", "benign", "bkl", "HAM_0000001"],
      ["ISIC_0000002", "benign", "bkl", "HAM_0000001"],
      ["ISIC_0000003", "malignant", "bcc", "HAM_0000002"],
    ]);
    expect(records[0]).toMatchObject({ ageYears: 80, sex: "male", site: "scalp", source: "vidir_modern" });
    expect(records[2].imagePath).toContain("HAM10000_images_part_2");
    expect(problems).toHaveLength(2);
    expect(problems[0].reason).toMatch(/unknown dx "mela".*did you mean "mel"/);
    expect(problems[1].reason).toMatch(/ISIC_0000005 not found/);
    expect(loadHam10000MetadataDataset(dir, { labelPolicy: "melanoma-vs-rest" }).records[2].label).toBe("benign");
  });
});

describe("ISIC 2019 adapter", () => {
  it("joins the one-hot ground truth with the metadata file", async () => {
    const dir = path.join(tmp, "isic2019");
    for (const id of ["ISIC_0000000", "ISIC_0000001", "ISIC_0000002", "ISIC_0000003"]) {
      await writeJpeg(path.join(dir, "ISIC_2019_Training_Input", `${id}.jpg`));
    }
    fs.writeFileSync(
      path.join(dir, "ISIC_2019_Training_GroundTruth.csv"),
      "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\n" +
        "ISIC_0000000,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0\n" +
        "ISIC_0000001,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0\n" +
        "ISIC_0000002,0.0,0.0,0.0,1.0,0.0,0.0,0.0,0.0,0.0\n" +
        "ISIC_0000003,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0\n",
    );
    fs.writeFileSync(
      path.join(dir, "ISIC_2019_Training_Metadata.csv"),
      "image,age_approx,anatom_site_general,lesion_id,sex\n" +
        "ISIC_0000000,55.0,anterior torso,,female\n" +
        "ISIC_0000001,30.0,upper extremity,BCN_0000001,male\n",
    );
    expect(loadDataset(dir).layout).toBe("isic2019");
    const { records, problems } = loadIsic2019Dataset(dir);
    expect(records.map((r) => [r.imageId, r.diagnosis, r.label])).toEqual([
      ["ISIC_0000000", "nv", "benign"],
      ["ISIC_0000001", "mel", "malignant"],
      ["ISIC_0000002", "akiec", "malignant"],
    ]);
    expect(records[0]).toMatchObject({ ageYears: 55, site: "anterior torso", sex: "female" });
    expect(records[0].lesionId).toBeUndefined();
    expect(records[1].lesionId).toBe("BCN_0000001");
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ row: 5, field: "diagnosis" });
    expect(problems[0].reason).toMatch(/no class set/);
    expect(loadIsic2019Dataset(dir, { labelPolicy: "melanoma-vs-rest" }).records.map((r) => r.label)).toEqual(["benign", "malignant", "benign"]);
  });

  it("names the missing one-hot columns", () => {
    const dir = path.join(tmp, "isic2019-bad");
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "ISIC_2019_Training_GroundTruth.csv"), "image,MEL,NV\nISIC_1,1,0\n");
    expect(() => loadIsic2019Dataset(dir)).toThrow(/missing required column\(s\) "BCC", "AK", "BKL", "DF", "VASC", "SCC"/);
  });
});

describe("ISIC 2020 adapter", () => {
  it("reads train.csv with patient ids and checks target against benign_malignant", async () => {
    const dir = path.join(tmp, "isic2020");
    for (const id of ["ISIC_2637011", "ISIC_0015719", "ISIC_0052212", "ISIC_0068279"]) {
      await writeJpeg(path.join(dir, "jpeg", "train", `${id}.jpg`));
    }
    fs.writeFileSync(
      path.join(dir, "train.csv"),
      "image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,benign_malignant,target\n" +
        "ISIC_2637011,IP_7279968,male,45.0,head/neck,unknown,benign,0\n" +
        "ISIC_0015719,IP_3075186,female,45.0,upper extremity,melanoma,malignant,1\n" +
        "ISIC_0052212,IP_2842074,female,50.0,lower extremity,nevus,malignant,0\n" +
        "ISIC_0068279,IP_6890425,female,,,seborrheic keratosis,benign,0\n",
    );
    expect(loadDataset(dir).layout).toBe("isic2020");
    const { records, problems } = loadIsic2020Dataset(dir);
    expect(records.map((r) => [r.imageId, r.label, r.patientId, r.diagnosis])).toEqual([
      ["ISIC_2637011", "benign", "IP_7279968", undefined],
      ["ISIC_0015719", "malignant", "IP_3075186", "mel"],
      ["ISIC_0068279", "benign", "IP_6890425", "bkl"],
    ]);
    expect(records[0]).toMatchObject({ ageYears: 45, site: "head/neck", sex: "male", source: "isic2020" });
    expect(problems).toHaveLength(1);
    expect(problems[0].reason).toMatch(/benign_malignant "malignant" contradicts target 0/);
  });
});
